"""Scheduled announcements in the database (SQLite migration 10, PostgreSQL 7).

A schedule holds the checked request (text, target channels, urgent, repeat, language), its
schedule and ``next_ms``, the next time it fires (None: nothing left). A fire is *claimed* by
inserting ``(schedule_id, due_ms)`` into ``announcement_fire``: the primary key lets exactly one
process or node win it (``INSERT OR IGNORE``; ``ON CONFLICT DO NOTHING`` on PostgreSQL), so each
fire happens once per deployment however many run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from voice_server.announce.request import AnnounceRequest
from voice_server.announce.schedule import Schedule, schedule_from_json, schedule_to_store
from voice_server.store.database import Database

__all__ = ["Fire", "ScheduleStore", "Scheduled"]

STATUSES = ("active", "done", "cancelled")
FIRE_STATUSES = ("firing", "played", "missed", "failed")


@dataclass(frozen=True, slots=True)
class Fire:
    due_ms: int
    status: str
    announcement_id: str | None
    error: str


@dataclass(frozen=True, slots=True)
class Scheduled:
    id: str
    author: str
    author_name: str
    request: AnnounceRequest  # channels: the checked targets
    schedule: Schedule
    next_ms: int | None
    status: str
    created_ms: int
    fires: tuple[Fire, ...] = ()


def _request_json(r: AnnounceRequest) -> str:
    return json.dumps(
        {
            "text": r.text,
            "channels": list(r.channels or ()),
            "urgent": r.urgent,
            "repeat": r.repeat,
            "language": r.language,
        },
        ensure_ascii=False,
    )


def _request_of(text: str) -> AnnounceRequest:
    d = json.loads(text)
    return AnnounceRequest(
        d["text"], tuple(d["channels"]), bool(d["urgent"]), int(d["repeat"]), d["language"]
    )


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, s: Scheduled) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO announcement_schedule (id, author, author_name, request, schedule, "
                "next_ms, status, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    s.id,
                    s.author,
                    s.author_name,
                    _request_json(s.request),
                    json.dumps(schedule_to_store(s.schedule)),
                    s.next_ms,
                    s.status,
                    s.created_ms,
                    s.created_ms,
                ),
            )

    def update(
        self,
        schedule_id: str,
        request: AnnounceRequest,
        schedule: Schedule,
        next_ms: int | None,
        now_ms: int,
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE announcement_schedule SET request = ?, schedule = ?, next_ms = ?, "
                "status = ?, updated_ms = ? WHERE id = ? AND status = 'active'",
                (
                    _request_json(request),
                    json.dumps(schedule_to_store(schedule)),
                    next_ms,
                    "active" if next_ms is not None else "done",
                    now_ms,
                    schedule_id,
                ),
            )

    def cancel(self, schedule_id: str, now_ms: int) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE announcement_schedule SET status = 'cancelled', next_ms = NULL, "
                "updated_ms = ? WHERE id = ? AND status = 'active'",
                (now_ms, schedule_id),
            )
            return bool(cur.rowcount)

    def get(self, schedule_id: str) -> Scheduled | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM announcement_schedule WHERE id = ?", (schedule_id,)
            ).fetchone()
            return self._full(conn, row) if row is not None else None

    def all(self, limit: int = 200) -> list[Scheduled]:
        """Active ones first (soonest first), then the rest, newest first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM announcement_schedule ORDER BY status = 'active' DESC, "
                "next_ms, created_ms DESC LIMIT ?",
                (limit,),
            ).fetchall()
            return [self._full(conn, r) for r in rows]

    def due(self, now_ms: int) -> list[Scheduled]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM announcement_schedule WHERE status = 'active' "
                "AND next_ms IS NOT NULL AND next_ms <= ? ORDER BY next_ms LIMIT 100",
                (now_ms,),
            ).fetchall()
            return [self._full(conn, r, fires=False) for r in rows]

    def claim(self, schedule_id: str, due_ms: int, status: str, now_ms: int) -> bool:
        """True for the one caller that inserted this fire."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO announcement_fire (schedule_id, due_ms, status, "
                "claimed_ms) VALUES (?, ?, ?, ?)",
                (schedule_id, due_ms, status, now_ms),
            )
            return cur.rowcount == 1

    def advance(self, schedule_id: str, due_ms: int, next_ms: int | None, now_ms: int) -> None:
        """Move past the fire at ``due_ms`` (done when nothing is left)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE announcement_schedule SET next_ms = ?, updated_ms = ?, status = ? "
                "WHERE id = ? AND status = 'active' AND next_ms = ?",
                (next_ms, now_ms, "done" if next_ms is None else "active", schedule_id, due_ms),
            )

    def finish_fire(
        self,
        schedule_id: str,
        due_ms: int,
        status: str,
        announcement_id: str | None = None,
        error: str = "",
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE announcement_fire SET status = ?, announcement_id = ?, error = ? "
                "WHERE schedule_id = ? AND due_ms = ?",
                (status, announcement_id, error[:500], schedule_id, due_ms),
            )

    @staticmethod
    def _full(conn: Any, row: Any, *, fires: bool = True) -> Scheduled:
        got: tuple[Fire, ...] = ()
        if fires:
            got = tuple(
                Fire(r["due_ms"], r["status"], r["announcement_id"], r["error"])
                for r in conn.execute(
                    "SELECT * FROM announcement_fire WHERE schedule_id = ? "
                    "ORDER BY due_ms DESC LIMIT 10",
                    (row["id"],),
                )
            )
        return Scheduled(
            id=row["id"],
            author=row["author"],
            author_name=row["author_name"],
            request=_request_of(row["request"]),
            schedule=schedule_from_json(json.loads(row["schedule"])),
            next_ms=row["next_ms"],
            status=row["status"],
            created_ms=row["created_ms"],
            fires=got,
        )
