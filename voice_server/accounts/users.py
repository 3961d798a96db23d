"""The users table and channel assignments (SQLite).

Model: a user has one role; ``channel_member`` lists the channels a user may talk in;
``channel_supervisor`` the channels whose call log and live view a supervisor (or an admin)
may use — supervising a channel also lets one talk in it. Users are never deleted (the audit
log refers to them): they are disabled.

Writes take a connection inside the caller's transaction so that a change and its audit entry
commit together (see ``accounts.service``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from voice_server.accounts.validate import AccountError
from voice_server.identity.tokens import Role
from voice_server.store.database import Database


class Assignment(StrEnum):
    MEMBER = "member"
    SUPERVISOR = "supervisor"

    @property
    def table(self) -> str:
        return "channel_member" if self is Assignment.MEMBER else "channel_supervisor"


@dataclass(frozen=True, slots=True)
class User:
    name: str
    display_name: str
    role: Role
    enabled: bool
    has_password: bool
    created_at: str
    updated_at: str
    member_of: tuple[str, ...] = ()
    supervises: tuple[str, ...] = ()

    @property
    def joinable(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.member_of) | set(self.supervises)))


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _channels(conn: sqlite3.Connection, table: str, name: str) -> tuple[str, ...]:
    rows = conn.execute(
        f"SELECT channel FROM {table} WHERE user_name = ? ORDER BY channel", (name,)
    ).fetchall()
    return tuple(r[0] for r in rows)


def _user(conn: sqlite3.Connection, row: sqlite3.Row) -> User:
    return User(
        name=row["name"],
        display_name=row["display_name"],
        role=Role(row["role"]),
        enabled=bool(row["enabled"]),
        has_password=row["password_hash"] is not None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        member_of=_channels(conn, "channel_member", row["name"]),
        supervises=_channels(conn, "channel_supervisor", row["name"]),
    )


class UserStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ reads
    def get(self, name: str, conn: sqlite3.Connection | None = None) -> User | None:
        if conn is None:
            with self._db.connection() as own:
                return self.get(name, own)
        row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
        return _user(conn, row) if row else None

    def require(self, conn: sqlite3.Connection, name: str) -> User:
        user = self.get(name, conn)
        if user is None:
            raise AccountError(f"no user named {name!r}", "not_found")
        return user

    def all(self) -> list[User]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT * FROM users ORDER BY name").fetchall()
            return [_user(conn, r) for r in rows]

    def password_hash(self, name: str) -> str | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT password_hash FROM users WHERE name = ? AND enabled = 1", (name,)
            ).fetchone()
        return row[0] if row else None

    def any(self) -> bool:
        with self._db.connection() as conn:
            return conn.execute("SELECT 1 FROM users LIMIT 1").fetchone() is not None

    def revision(self) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("SELECT n FROM directory_revision").fetchone()[0])

    def enabled_admins(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT count(*) FROM users WHERE role = 'admin' AND enabled = 1")
        return int(row.fetchone()[0])

    # ------------------------------------------------------------------ writes (in a transaction)
    def insert(
        self,
        conn: sqlite3.Connection,
        name: str,
        display_name: str,
        role: Role,
        password_hash: str | None,
    ) -> None:
        stamp = now_iso()
        try:
            conn.execute(
                "INSERT INTO users (name, display_name, role, password_hash, enabled, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (name, display_name, role.value, password_hash, stamp, stamp),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"user {name!r} already exists", "conflict") from None

    def set_enabled(self, conn: sqlite3.Connection, name: str, enabled: bool) -> None:
        conn.execute(
            "UPDATE users SET enabled = ?, updated_at = ? WHERE name = ?",
            (int(enabled), now_iso(), name),
        )

    def set_password_hash(self, conn: sqlite3.Connection, name: str, hashed: str) -> None:
        conn.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
            (hashed, now_iso(), name),
        )

    def set_display_name(self, conn: sqlite3.Connection, name: str, display: str) -> None:
        conn.execute(
            "UPDATE users SET display_name = ?, updated_at = ? WHERE name = ?",
            (display, now_iso(), name),
        )

    def assign(self, conn: sqlite3.Connection, channel: str, name: str, kind: Assignment) -> bool:
        """Add an assignment; False when it already existed."""
        cur = conn.execute(
            f"INSERT OR IGNORE INTO {kind.table} (channel, user_name) VALUES (?, ?)",
            (channel, name),
        )
        return cur.rowcount > 0

    def unassign(self, conn: sqlite3.Connection, channel: str, name: str, kind: Assignment) -> bool:
        cur = conn.execute(
            f"DELETE FROM {kind.table} WHERE channel = ? AND user_name = ?", (channel, name)
        )
        return cur.rowcount > 0

    def assigned(self, conn: sqlite3.Connection, channel: str, kind: Assignment) -> list[str]:
        rows = conn.execute(
            f"SELECT user_name FROM {kind.table} WHERE channel = ? ORDER BY user_name",
            (channel,),
        ).fetchall()
        return [r[0] for r in rows]

    def assignments(self, channel: str) -> dict[Assignment, list[str]]:
        with self._db.connection() as conn:
            return {kind: self.assigned(conn, channel, kind) for kind in Assignment}
