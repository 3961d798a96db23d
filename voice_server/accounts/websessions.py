"""Server-side web sessions (the dashboard and the phone client's sign-in).

The cookie carries 32 random bytes; the table keeps only their SHA-256, so a copy of the
database does not hold live sessions. A session is revocable: logout revokes it, disabling a
user or resetting their password revokes all of theirs.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from voice_server.store.database import Database

MAX_ID_LENGTH = 128


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class WebSession:
    user_name: str
    csrf: str
    via: str  # password | code
    created_at: float
    expires_at: float


class WebSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, user_name: str, *, via: str, address: str, ttl: float, now: float
    ) -> tuple[str, WebSession]:
        raw = secrets.token_urlsafe(32)
        session = WebSession(user_name, secrets.token_urlsafe(32), via, now, now + ttl)
        with self._db.transaction() as conn:
            # forget sessions that ended more than a day ago
            conn.execute("DELETE FROM web_session WHERE expires_at < ?", (now - 86400,))
            conn.execute(
                "INSERT INTO web_session (id_hash, user_name, csrf, via, address, created_at,"
                " expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (_digest(raw), user_name, session.csrf, via, address[:64], now, session.expires_at),
            )
        return raw, session

    def resolve(self, raw: str, now: float) -> WebSession | None:
        if not raw or len(raw) > MAX_ID_LENGTH:
            return None
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT user_name, csrf, via, created_at, expires_at FROM web_session"
                " WHERE id_hash = ? AND revoked = 0 AND expires_at > ?",
                (_digest(raw), now),
            ).fetchone()
        if row is None:
            return None
        return WebSession(row[0], row[1], row[2], row[3], row[4])

    def ended(self, raw: str, now: float) -> tuple[str, str] | None:
        """Why the session of this cookie value no longer works: ``(user_name, "revoked" |
        "expired")``, or None when it is live or unknown (rows are kept a day past expiry)."""
        if not raw or len(raw) > MAX_ID_LENGTH:
            return None
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT user_name, revoked, expires_at FROM web_session WHERE id_hash = ?",
                (_digest(raw),),
            ).fetchone()
        if row is None:
            return None
        if row[1]:
            return row[0], "revoked"
        if row[2] <= now:
            return row[0], "expired"
        return None

    def revoke(self, raw: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("UPDATE web_session SET revoked = 1 WHERE id_hash = ?", (_digest(raw),))

    @staticmethod
    def revoke_user(conn: sqlite3.Connection, user_name: str) -> None:
        conn.execute("UPDATE web_session SET revoked = 1 WHERE user_name = ?", (user_name,))
