"""The embedded call-log backend: SQLite (WAL) in ``<data-dir>/voice.db``.

Schema: migrations 2 and 4 of :mod:`voice_server.store.database`. The full-text index is an FTS5
``trigram`` table with external content (``content='utterance'``), kept in step by triggers, so a
deleted utterance leaves the index too. Trigrams cannot match 1-2 characters, so every distinct
unigram and bigram of an utterance's normalized text goes into ``utterance_grams`` at insert
time (the side index: a contentless FTS5 table, ``detail=none``, one token per gram), and
:meth:`SqliteCallLog.delete_in` hands the same tokens back when a row goes. Rowids are
time-ordered (see :mod:`voice_server.calllog.model`): time filters and pagination are rowid
ranges, and searches read indexes newest first without sorting hits (:mod:`.plan`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from voice_server.calllog.model import (
    CommitEvent,
    Gap,
    SearchPage,
    SearchQuery,
    Utterance,
    rowid_of,
)
from voice_server.calllog.normalize import gram_tokens
from voice_server.calllog.plan import plan
from voice_server.calllog.replay import replay_args, replay_page, replay_sql
from voice_server.calllog.rows import GAP_COLUMNS, NORM, gap_values, row_values, utterance_of
from voice_server.calllog.search import run_plan
from voice_server.store.database import Database

__all__ = ["SqliteCallLog"]

_COLUMNS = (
    "id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, words, model, "
    "language, clip, kind, broadcast_id, target_sub"
)


_INSERT = (
    "INSERT INTO utterance (id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, "
    "norm, words, model, language, clip, burst_end_ms, committed_ms, kind, broadcast_id, "
    "target_sub) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_GRAMS = "INSERT INTO utterance_grams (rowid, grams) VALUES (?, ?)"
_INSERT_EVENT = "INSERT INTO commit_event (kind, ref, channel, created_ms) VALUES (?, ?, ?, ?)"


class SqliteCallLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ writes
    def add_utterance(
        self, utterance: Utterance, *, burst_end_ms: int | None = None, committed_ms: int
    ) -> bool:
        with self._db.transaction() as conn:
            return self.add_utterance_in(conn, utterance, burst_end_ms, committed_ms)

    @classmethod
    def add_utterance_in(
        cls,
        conn: sqlite3.Connection,
        utterance: Utterance,
        burst_end_ms: int | None,
        committed_ms: int,
    ) -> bool:
        """:meth:`add_utterance` in the caller's transaction (the job queue's fenced commit)."""
        if cls._is_done(conn, utterance.id):
            return False
        cls._insert(conn, utterance, burst_end_ms, committed_ms)
        return True

    def add_many(self, utterances: Iterable[Utterance], *, committed_ms: int) -> int:
        """Bulk insert in one transaction (seeding, the search benchmark): no done-check, so the
        burst ids must be new. Returns how many were added."""
        rows: list[tuple[Any, ...]] = []
        grams: list[tuple[int, str]] = []
        with self._db.transaction() as conn:
            taken: set[int] = set()
            for u in utterances:
                rowid = rowid_of(u.id)
                while rowid in taken:
                    rowid += 1
                taken.add(rowid)
                row = row_values(rowid, u, None, committed_ms)
                rows.append(row)
                grams.append((rowid, gram_tokens(row[NORM])))
            conn.executemany(_INSERT, rows)
            conn.executemany(_INSERT_GRAMS, grams)
        return len(rows)

    @staticmethod
    def _insert(
        conn: sqlite3.Connection, u: Utterance, burst_end_ms: int | None, committed_ms: int
    ) -> None:
        rowid = rowid_of(u.id)
        while conn.execute("SELECT 1 FROM utterance WHERE id = ?", (rowid,)).fetchone():
            rowid += 1  # same millisecond and same 10 random bits: take the next rowid
        row = row_values(rowid, u, burst_end_ms, committed_ms)
        conn.execute(_INSERT, row)
        conn.execute(_INSERT_GRAMS, (rowid, gram_tokens(row[NORM])))
        conn.execute(_INSERT_EVENT, ("utterance", u.id, u.channel, committed_ms))

    # ------------------------------------------------------------------ commit events
    def events_after(self, seq: int, limit: int = 100) -> list[CommitEvent]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT seq, kind, ref, channel, created_ms FROM commit_event WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (seq, max(1, min(limit, 1000))),
            ).fetchall()
        return [CommitEvent(*tuple(r)) for r in rows]

    def last_event_seq(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT max(seq) FROM commit_event").fetchone()
        return int(row[0] or 0)

    def add_gap(self, gap: Gap, *, created_ms: int) -> bool:
        with self._db.transaction() as conn:
            return self.add_gap_in(conn, gap, created_ms)

    @classmethod
    def add_gap_in(cls, conn: sqlite3.Connection, gap: Gap, created_ms: int) -> bool:
        """:meth:`add_gap` in the caller's transaction."""
        if cls._is_done(conn, gap.id):
            return False
        conn.execute(
            f"INSERT INTO gap ({GAP_COLUMNS}) VALUES ({', '.join(['?'] * 9)})",
            gap_values(gap, created_ms),
        )
        return True

    @staticmethod
    def _is_done(conn: sqlite3.Connection, burst_id: str) -> bool:
        return bool(
            conn.execute("SELECT 1 FROM utterance WHERE uid = ?", (burst_id,)).fetchone()
            or conn.execute("SELECT 1 FROM gap WHERE uid = ?", (burst_id,)).fetchone()
        )

    def delete(self, burst_ids: Iterable[str]) -> int:
        with self._db.transaction() as conn:
            return self.delete_in(conn, list(burst_ids))

    @staticmethod
    def delete_in(conn: sqlite3.Connection, burst_ids: list[str]) -> int:
        """Delete utterances (caller's transaction): the trigram index follows by trigger, the
        side index is given each row's gram tokens back (it is contentless)."""
        removed = 0
        for start in range(0, len(burst_ids), 500):
            chunk = burst_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT id, norm FROM utterance WHERE uid IN ({marks})", chunk
            ).fetchall()
            conn.executemany(
                "INSERT INTO utterance_grams (utterance_grams, rowid, grams) "
                "VALUES ('delete', ?, ?)",
                [(r["id"], gram_tokens(r["norm"])) for r in rows],
            )
            conn.executemany("DELETE FROM utterance WHERE id = ?", [(r["id"],) for r in rows])
            removed += len(rows)
        return removed

    # ------------------------------------------------------------------ reads
    def done(self, burst_ids: Iterable[str]) -> set[str]:
        ids = list(burst_ids)
        found: set[str] = set()
        with self._db.connection() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for table in ("utterance", "gap"):
                    rows = conn.execute(
                        f"SELECT uid FROM {table} WHERE uid IN ({marks})", chunk
                    ).fetchall()
                    found.update(r[0] for r in rows)
                # a burst into several channels: its rows carry it as their broadcast id
                rows = conn.execute(
                    f"SELECT DISTINCT broadcast_id FROM utterance WHERE broadcast_id IN ({marks})",
                    chunk,
                ).fetchall()
                found.update(r[0] for r in rows)
        return found

    def get(self, burst_id: str) -> Utterance | None:
        with self._db.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM utterance WHERE uid = ?", (burst_id,)
            ).fetchone()
        return utterance_of(row) if row else None

    def gaps(
        self, *, channels: frozenset[str] | None, since_ms: int | None, until_ms: int | None
    ) -> list[Gap]:
        sql = "SELECT * FROM gap WHERE start_ms >= ? AND start_ms <= ?"
        args: list[Any] = [since_ms or 0, until_ms if until_ms is not None else 1 << 62]
        if channels is not None:
            sql += f" AND channel IN ({','.join('?' * len(channels))})"
            args += sorted(channels)
        with self._db.connection() as conn:
            rows = conn.execute(sql + " ORDER BY start_ms DESC LIMIT 1000", args).fetchall()
        return [
            Gap(
                r["uid"],
                r["channel"],
                r["speaker_id"],
                r["speaker_name"],
                r["start_ms"],
                r["end_ms"],
                r["reason"],
                r["detail"],
            )
            for r in rows
        ]

    def commit_latencies_ms(self, since_ms: int) -> list[int]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT committed_ms - burst_end_ms FROM utterance "
                "WHERE committed_ms >= ? AND burst_end_ms IS NOT NULL",
                (since_ms,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def search(self, query: SearchQuery) -> SearchPage:
        with self._db.connection() as conn:
            rows, more = run_plan(conn, plan(query))
        rowids = tuple(int(r["id"]) for r in rows)
        return SearchPage(
            tuple(utterance_of(r) for r in rows), rowids[-1] if more and rowids else None, rowids
        )

    def replay(
        self,
        channel: str,
        viewer: str,
        *,
        since_ms: int,
        before_rowid: int | None = None,
        limit: int = 50,
    ) -> SearchPage:
        args = replay_args(channel, viewer, since_ms, before_rowid, limit)
        with self._db.connection() as conn:
            rows = conn.execute(replay_sql(_COLUMNS), args).fetchall()
        return replay_page(rows, limit, utterance_of)
