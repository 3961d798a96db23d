"""Channels: a talk group with a name (ASCII slug), a display name (Japanese allowed) and settings.

``retention_days`` (None: keep for ever) and ``legal_hold`` are set by admins (the purge that acts
on them comes with the call log); a JSON ``settings`` object is kept for later (phrase list, …).
Who supervises and who may talk in a channel: ``accounts.users`` (channel_supervisor,
channel_member).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from voice_server.names import CHANNEL_NAME_RE
from voice_server.store.database import Database

NAME_RE = CHANNEL_NAME_RE
DISPLAY_MAX = 100
RETENTION_MAX_DAYS = 36500


class ChannelError(Exception):
    """A channel operation was refused; the message is one line for users."""


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    display_name: str
    created_at: str
    retention_days: int | None = None
    legal_hold: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise ChannelError(
            f"invalid channel name {name!r}: use 1-64 letters, digits, '_', '-', '.', "
            "starting with a letter or digit"
        )
    return name


def validate_display_name(display: str) -> str:
    display = display.strip()
    if not display or len(display) > DISPLAY_MAX or any(ord(c) < 32 for c in display):
        raise ChannelError(f"display name must be 1-{DISPLAY_MAX} printable characters")
    return display


def validate_retention(days: int | None) -> int | None:
    if days is not None and not 1 <= days <= RETENTION_MAX_DAYS:
        raise ChannelError(f"retention must be 1-{RETENTION_MAX_DAYS} days (or none)")
    return days


def _row(row: sqlite3.Row) -> Channel:
    return Channel(
        name=row["name"],
        display_name=row["display_name"],
        created_at=row["created_at"],
        retention_days=row["retention_days"],
        legal_hold=bool(row["legal_hold"]),
        settings=json.loads(row["settings"] or "{}"),
    )


class ChannelStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self, name: str, display_name: str | None = None, conn: sqlite3.Connection | None = None
    ) -> Channel:
        """Add a channel (in the caller's transaction when ``conn`` is given)."""
        validate_name(name)
        display = validate_display_name(display_name if display_name is not None else name)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        if conn is None:
            with self._db.transaction() as own:
                return self.add(name, display, own)
        try:
            conn.execute(
                "INSERT INTO channel (name, display_name, created_at) VALUES (?, ?, ?)",
                (name, display, created),
            )
        except sqlite3.IntegrityError:
            raise ChannelError(f"channel {name!r} already exists") from None
        return Channel(name, display, created)

    def update(
        self,
        conn: sqlite3.Connection,
        name: str,
        *,
        display_name: str,
        retention_days: int | None,
        legal_hold: bool,
    ) -> None:
        """Change a channel's display name, retention and legal hold (caller's transaction)."""
        cur = conn.execute(
            "UPDATE channel SET display_name = ?, retention_days = ?, legal_hold = ?"
            " WHERE name = ?",
            (
                validate_display_name(display_name),
                validate_retention(retention_days),
                int(legal_hold),
                name,
            ),
        )
        if cur.rowcount == 0:
            raise ChannelError(f"no channel named {name!r}")

    def set_settings(self, conn: sqlite3.Connection, name: str, settings: dict[str, Any]) -> None:
        """Replace a channel's JSON settings (caller's transaction)."""
        cur = conn.execute(
            "UPDATE channel SET settings = ? WHERE name = ?",
            (json.dumps(settings, ensure_ascii=False, sort_keys=True), name),
        )
        if cur.rowcount == 0:
            raise ChannelError(f"no channel named {name!r}")

    def get(self, name: str, conn: sqlite3.Connection | None = None) -> Channel | None:
        if conn is not None:
            row = conn.execute("SELECT * FROM channel WHERE name = ?", (name,)).fetchone()
            return _row(row) if row else None
        with self._db.connection() as own:
            return self.get(name, own)

    def list(self) -> list[Channel]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT * FROM channel ORDER BY name").fetchall()
        return [_row(r) for r in rows]

    def remove(self, name: str) -> None:
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM channel WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise ChannelError(f"no channel named {name!r}")

    def count(self) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM channel").fetchone()[0])
