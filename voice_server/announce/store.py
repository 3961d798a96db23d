"""Announcements in the database (migration 6): the announcement, each target channel's fate
and who heard it there. Call-log rows go through the call log, not here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voice_server.store.database import Database

__all__ = ["Announcement", "AnnouncementStore", "Target"]

STATUSES = ("playing", "done", "failed")
TARGET_STATUSES = ("waiting", "playing", "played", "slot_timeout", "failed")


@dataclass(frozen=True, slots=True)
class Target:
    channel: str
    status: str
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Announcement:
    id: str
    author: str
    author_name: str
    text: str
    language: str
    urgent: bool
    repeat: int
    status: str
    error: str
    seconds: float
    clip: str | None
    created_ms: int
    targets: tuple[Target, ...] = ()
    heard: dict[str, dict[str, bool]] = field(default_factory=dict)  # channel -> user -> heard


def _announcement(row: Any, targets: tuple[Target, ...], heard: Any) -> Announcement:
    return Announcement(
        id=row["id"],
        author=row["author"],
        author_name=row["author_name"],
        text=row["text"],
        language=row["language"],
        urgent=bool(row["urgent"]),
        repeat=row["repeat"],
        status=row["status"],
        error=row["error"],
        seconds=row["seconds"],
        clip=row["clip"],
        created_ms=row["created_ms"],
        targets=targets,
        heard=heard,
    )


class AnnouncementStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, a: Announcement) -> None:
        """The announcement and its targets, in one transaction (nothing half-stored)."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO announcement (id, author, author_name, text, language, urgent, "
                "repeat, status, error, seconds, clip, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    a.id,
                    a.author,
                    a.author_name,
                    a.text,
                    a.language,
                    int(a.urgent),
                    a.repeat,
                    a.status,
                    a.error,
                    a.seconds,
                    a.clip,
                    a.created_ms,
                ),
            )
            conn.executemany(
                "INSERT INTO announcement_target (announcement_id, channel, status) "
                "VALUES (?, ?, ?)",
                [(a.id, t.channel, t.status) for t in a.targets],
            )

    def set_target(
        self,
        announcement_id: str,
        channel: str,
        status: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE announcement_target SET status = ?, start_ms = coalesce(?, start_ms), "
                "end_ms = coalesce(?, end_ms) WHERE announcement_id = ? AND channel = ?",
                (status, start_ms, end_ms, announcement_id, channel),
            )

    def set_heard(self, announcement_id: str, channel: str, fractions: dict[str, float]) -> None:
        from voice_server.announce.heard import HEARD_FRACTION

        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO announcement_heard "
                "(announcement_id, channel, user_name, heard, fraction) VALUES (?, ?, ?, ?, ?)",
                [
                    (announcement_id, channel, user, int(f >= HEARD_FRACTION), round(f, 4))
                    for user, f in fractions.items()
                ],
            )

    def finish(self, announcement_id: str, status: str, error: str = "") -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE announcement SET status = ?, error = ? WHERE id = ?",
                (status, error[:500], announcement_id),
            )

    def get(self, announcement_id: str) -> Announcement | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM announcement WHERE id = ?", (announcement_id,)
            ).fetchone()
            if row is None:
                return None
            return self._full(conn, row)

    def recent(self, channels: frozenset[str] | None, limit: int = 50) -> list[Announcement]:
        """Newest first; those reaching one of ``channels`` (None: all)."""
        with self._db.connection() as conn:
            if channels is None:
                rows = conn.execute(
                    "SELECT * FROM announcement ORDER BY created_ms DESC LIMIT ?", (limit,)
                ).fetchall()
            else:
                marks = ",".join("?" * len(channels))
                rows = conn.execute(
                    "SELECT * FROM announcement WHERE id IN (SELECT announcement_id FROM "
                    f"announcement_target WHERE channel IN ({marks})) "
                    "ORDER BY created_ms DESC LIMIT ?",
                    (*sorted(channels), limit),
                ).fetchall()
            return [self._full(conn, r) for r in rows]

    @staticmethod
    def _full(conn: Any, row: Any) -> Announcement:
        targets = tuple(
            Target(r["channel"], r["status"], r["start_ms"], r["end_ms"])
            for r in conn.execute(
                "SELECT * FROM announcement_target WHERE announcement_id = ? ORDER BY channel",
                (row["id"],),
            )
        )
        heard: dict[str, dict[str, bool]] = {}
        for r in conn.execute(
            "SELECT channel, user_name, heard FROM announcement_heard WHERE announcement_id = ?",
            (row["id"],),
        ):
            heard.setdefault(r["channel"], {})[r["user_name"]] = bool(r["heard"])
        return _announcement(row, targets, heard)
