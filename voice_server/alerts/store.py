"""Alerts in the database (SQLite migration 8, PostgreSQL 5): alerts, the alert event sequence,
keyword lists and named cursors. Every write that changes an alert appends one alert event in
its own transaction, so every process's feed (``alerts.feed``) sees every change in order; the
caller passes its transaction (``conn``) to add the audit row to the same commit.

Runs on SQLite and, through ``store.pgcompat``, on PostgreSQL (the same statements)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voice_server.alerts.keywords import Keyword
from voice_server.alerts.model import Alert, AlertKind, AlertState
from voice_server.store.database import Database

__all__ = ["DEPLOYMENT", "AlertFilter", "AlertStore"]

DEPLOYMENT = ""  # the keyword scope of the whole deployment
_COLUMNS = (
    "id, kind, channel, state, dedupe, raised_ms, raised_by, subject, subject_name, keyword, "
    "utterance, detail, acked_ms, acked_by, acked_by_name, resolved_ms, resolved_by, "
    "resolved_by_name, resolution, note, escalated, updated_ms"
)
_MARKS = ", ".join("?" * len(_COLUMNS.split(",")))


@dataclass(frozen=True, slots=True)
class AlertFilter:
    channels: frozenset[str] | None = None  # None: every channel
    include_deployment: bool = True  # alerts of no channel (transcription)
    escalated_too: bool = False  # escalated alerts whatever their channel
    kind: AlertKind | None = None
    state: AlertState | None = None
    open_only: bool = False
    since_ms: int | None = None
    until_ms: int | None = None
    limit: int = 100


def _values(a: Alert) -> tuple[Any, ...]:
    return (
        a.id,
        a.kind.value,
        a.channel,
        a.state.value,
        a.dedupe,
        a.raised_ms,
        a.raised_by,
        a.subject,
        a.subject_name,
        a.keyword,
        a.utterance,
        a.detail_json(),
        a.acked_ms,
        a.acked_by,
        a.acked_by_name,
        a.resolved_ms,
        a.resolved_by,
        a.resolved_by_name,
        a.resolution,
        a.note,
        int(a.escalated),
        a.updated_ms,
    )


def _alert(row: Any) -> Alert:
    try:
        detail = json.loads(row["detail"] or "{}")
    except ValueError:
        detail = {}
    return Alert(
        id=row["id"],
        kind=AlertKind(row["kind"]),
        channel=row["channel"],
        state=AlertState(row["state"]),
        dedupe=row["dedupe"],
        raised_ms=int(row["raised_ms"]),
        raised_by=row["raised_by"],
        subject=row["subject"],
        subject_name=row["subject_name"],
        keyword=row["keyword"],
        utterance=row["utterance"],
        detail=detail if isinstance(detail, dict) else {},
        acked_ms=row["acked_ms"],
        acked_by=row["acked_by"],
        acked_by_name=row["acked_by_name"],
        resolved_ms=row["resolved_ms"],
        resolved_by=row["resolved_by"],
        resolved_by_name=row["resolved_by_name"],
        resolution=row["resolution"],
        note=row["note"],
        escalated=bool(row["escalated"]),
        updated_ms=int(row["updated_ms"]),
    )


class AlertStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writes (in a transaction)
    def insert(self, conn: sqlite3.Connection, alert: Alert) -> bool:
        """Add ``alert`` and its event; False (nothing written) when its dedupe key is taken."""
        cur = conn.execute(
            f"INSERT OR IGNORE INTO alert ({_COLUMNS}) VALUES ({_MARKS})", _values(alert)
        )
        if cur.rowcount != 1:
            return False
        self._event(conn, alert)
        return True

    def replace(self, conn: sqlite3.Connection, before: Alert, after: Alert) -> bool:
        """Store ``after`` if the alert is still as ``before`` (same state, same update time)."""
        cur = conn.execute(
            "UPDATE alert SET state = ?, dedupe = ?, acked_ms = ?, acked_by = ?, "
            "acked_by_name = ?, resolved_ms = ?, resolved_by = ?, resolved_by_name = ?, "
            "resolution = ?, note = ?, escalated = ?, updated_ms = ? "
            "WHERE id = ? AND state = ? AND updated_ms = ?",
            (
                after.state.value,
                after.dedupe,
                after.acked_ms,
                after.acked_by,
                after.acked_by_name,
                after.resolved_ms,
                after.resolved_by,
                after.resolved_by_name,
                after.resolution,
                after.note,
                int(after.escalated),
                after.updated_ms,
                before.id,
                before.state.value,
                before.updated_ms,
            ),
        )
        if cur.rowcount != 1:
            return False
        self._event(conn, after)
        return True

    @staticmethod
    def _event(conn: sqlite3.Connection, alert: Alert) -> None:
        conn.execute(
            "INSERT INTO alert_event (alert_id, created_ms) VALUES (?, ?)",
            (alert.id, alert.updated_ms),
        )

    # ------------------------------------------------------------------ reads
    def get(self, alert_id: str, conn: sqlite3.Connection | None = None) -> Alert | None:
        if conn is not None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM alert WHERE id = ?", (alert_id,)).fetchone()
            return _alert(row) if row is not None else None
        with self.db.connection() as own:
            return self.get(alert_id, own)

    def by_dedupe(self, dedupe: str) -> Alert | None:
        with self.db.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM alert WHERE dedupe = ?", (dedupe,)
            ).fetchone()
        return _alert(row) if row is not None else None

    def find(self, f: AlertFilter) -> list[Alert]:
        """Newest first, at most ``f.limit``."""
        where: list[str] = []
        args: list[Any] = []
        if f.channels is not None:
            marks = ",".join("?" * len(f.channels))
            scope = [f"channel IN ({marks})"] if f.channels else []
            args.extend(sorted(f.channels))
            if f.include_deployment:
                scope.append("channel = ''")
            if f.escalated_too:
                scope.append("escalated = 1")
            where.append("(" + (" OR ".join(scope) or "0 = 1") + ")")
        if f.kind is not None:
            where.append("kind = ?")
            args.append(f.kind.value)
        if f.state is not None:
            where.append("state = ?")
            args.append(f.state.value)
        if f.open_only:
            where.append("state != 'resolved'")
        if f.since_ms is not None:
            where.append("raised_ms >= ?")
            args.append(f.since_ms)
        if f.until_ms is not None:
            where.append("raised_ms < ?")
            args.append(f.until_ms)
        sql = f"SELECT {_COLUMNS} FROM alert"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_ms DESC, id DESC LIMIT ?"
        args.append(max(1, min(f.limit, 500)))
        with self.db.connection() as conn:
            return [_alert(r) for r in conn.execute(sql, args).fetchall()]

    def events_after(self, seq: int, limit: int = 200) -> list[tuple[int, str]]:
        """(seq, alert id) of the alert events after ``seq``, oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT seq, alert_id FROM alert_event WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]

    def last_event_seq(self) -> int:
        with self.db.connection() as conn:
            row = conn.execute("SELECT max(seq) FROM alert_event").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ keyword lists
    def keywords(self, scope: str | None = None) -> dict[str, list[Keyword]]:
        """Every list (or one scope's), in the order they were typed."""
        sql = "SELECT scope, norm, text FROM alert_keyword"
        args: tuple[Any, ...] = ()
        if scope is not None:
            sql += " WHERE scope = ?"
            args = (scope,)
        out: dict[str, list[Keyword]] = {}
        with self.db.connection() as conn:
            for r in conn.execute(sql + " ORDER BY scope, position", args).fetchall():
                out.setdefault(r["scope"], []).append(Keyword(r["text"], r["norm"]))
        return out

    def set_keywords(
        self, conn: sqlite3.Connection, scope: str, keywords: Sequence[Keyword]
    ) -> None:
        """Replace one scope's list (inside the caller's transaction)."""
        conn.execute("DELETE FROM alert_keyword WHERE scope = ?", (scope,))
        conn.executemany(
            "INSERT INTO alert_keyword (scope, norm, text, position) VALUES (?, ?, ?, ?)",
            [(scope, k.norm, k.text, i) for i, k in enumerate(keywords)],
        )

    # ------------------------------------------------------------------ cursors
    def cursor(self, name: str, conn: sqlite3.Connection | None = None) -> int | None:
        if conn is None:
            with self.db.connection() as own:
                return self.cursor(name, own)
        row = conn.execute("SELECT seq FROM alert_cursor WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row is not None else None

    def set_cursor(self, conn: sqlite3.Connection, name: str, seq: int) -> None:
        conn.execute("INSERT OR REPLACE INTO alert_cursor (name, seq) VALUES (?, ?)", (name, seq))
