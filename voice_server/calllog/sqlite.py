"""The embedded call-log backend: SQLite (WAL) in ``<data-dir>/voice.db``.

Schema: migration 2 of :mod:`voice_server.store.database`. The full-text index is an FTS5
``trigram`` table with external content (``content='utterance'``), kept in step by triggers, so a
deleted utterance leaves the index too. Trigrams cannot match 1-2 characters, so every distinct
unigram and bigram of an utterance's normalized text goes into ``utterance_gram`` at insert time
(the side index). Rowids are time-ordered (see :mod:`voice_server.calllog.model`): time filters
and pagination are rowid ranges, and both indexes are read newest first without sorting hits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from voice_server.calllog.model import (
    Gap,
    SearchPage,
    SearchQuery,
    Utterance,
    Word,
    rowid_of,
    since_until_rowids,
)
from voice_server.calllog.normalize import normalize, short_grams, split_terms
from voice_server.store.database import Database

__all__ = ["SqliteCallLog"]

_COLUMNS = (
    "id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, words, model, "
    "language, clip"
)


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _utterance(row: sqlite3.Row) -> Utterance:
    words = tuple(
        Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w["conf"]))
        for w in json.loads(row["words"] or "[]")
    )
    return Utterance(
        id=row["uid"],
        channel=row["channel"],
        speaker_id=row["speaker_id"],
        speaker_name=row["speaker_name"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        text=row["text"],
        words=words,
        model=row["model"],
        language=row["language"],
        clip=row["clip"],
    )


class SqliteCallLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ------------------------------------------------------------------ writes
    def add_utterance(
        self, utterance: Utterance, *, burst_end_ms: int | None = None, committed_ms: int
    ) -> bool:
        u = utterance
        norm = normalize(u.text, u.language)
        words = json.dumps(
            [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in u.words],
            ensure_ascii=False,
        )
        with self._db.transaction() as conn:
            if self._is_done(conn, u.id):
                return False
            rowid = rowid_of(u.id)
            while conn.execute("SELECT 1 FROM utterance WHERE id = ?", (rowid,)).fetchone():
                rowid += 1  # same millisecond and same 10 random bits: take the next rowid
            conn.execute(
                "INSERT INTO utterance (id, uid, channel, speaker_id, speaker_name, start_ms, "
                "end_ms, text, norm, words, model, language, clip, burst_end_ms, committed_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rowid,
                    u.id,
                    u.channel,
                    u.speaker_id,
                    u.speaker_name,
                    u.start_ms,
                    u.end_ms,
                    u.text,
                    norm,
                    words,
                    u.model,
                    u.language,
                    u.clip,
                    burst_end_ms,
                    committed_ms,
                ),
            )
            conn.executemany(
                "INSERT INTO utterance_gram (gram, utterance_id) VALUES (?, ?)",
                [(g, rowid) for g in sorted(short_grams(norm))],
            )
        return True

    def add_gap(self, gap: Gap, *, created_ms: int) -> bool:
        with self._db.transaction() as conn:
            if self._is_done(conn, gap.id):
                return False
            conn.execute(
                "INSERT INTO gap (uid, channel, speaker_id, speaker_name, start_ms, end_ms, "
                "reason, detail, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    gap.id,
                    gap.channel,
                    gap.speaker_id,
                    gap.speaker_name,
                    gap.start_ms,
                    gap.end_ms,
                    gap.reason,
                    gap.detail[:500],
                    created_ms,
                ),
            )
        return True

    @staticmethod
    def _is_done(conn: sqlite3.Connection, burst_id: str) -> bool:
        return bool(
            conn.execute("SELECT 1 FROM utterance WHERE uid = ?", (burst_id,)).fetchone()
            or conn.execute("SELECT 1 FROM gap WHERE uid = ?", (burst_id,)).fetchone()
        )

    def delete(self, burst_ids: Iterable[str]) -> int:
        ids = list(burst_ids)
        removed = 0
        with self._db.transaction() as conn:
            for uid in ids:
                removed += conn.execute("DELETE FROM utterance WHERE uid = ?", (uid,)).rowcount
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
        return found

    def get(self, burst_id: str) -> Utterance | None:
        with self._db.connection() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM utterance WHERE uid = ?", (burst_id,)
            ).fetchone()
        return _utterance(row) if row else None

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
        if query.channels is not None and not query.channels:
            return SearchPage()
        lo, hi = since_until_rowids(query.since_ms, query.until_ms)
        if query.before_rowid is not None:
            hi = min(hi, query.before_rowid - 1)
        terms = split_terms(query.q or "")
        long_terms = [t for t in terms if len(t) >= 3]
        short_terms = [t for t in terms if len(t) < 3]
        args: list[Any] = []
        if long_terms:
            sql = (
                f"SELECT {_prefixed('u')} FROM utterance_fts f JOIN utterance u ON u.id = f.rowid "
                "WHERE utterance_fts MATCH ? AND f.rowid BETWEEN ? AND ?"
            )
            args += [" AND ".join(_fts_phrase(t) for t in long_terms), lo, hi]
            order = "f.rowid"
        elif short_terms:
            first = short_terms.pop(0)
            sql = (
                f"SELECT {_prefixed('u')} FROM utterance_gram g JOIN utterance u "
                "ON u.id = g.utterance_id WHERE g.gram = ? AND g.utterance_id BETWEEN ? AND ?"
            )
            args += [first, lo, hi]
            order = "g.utterance_id"
        else:
            sql = f"SELECT {_prefixed('u')} FROM utterance u WHERE u.id BETWEEN ? AND ?"
            args += [lo, hi]
            order = "u.id"
        for term in short_terms:
            sql += (
                " AND EXISTS (SELECT 1 FROM utterance_gram s WHERE s.gram = ? "
                "AND s.utterance_id = u.id)"
            )
            args.append(term)
        if query.channels is not None:
            sql += f" AND u.channel IN ({','.join('?' * len(query.channels))})"
            args += sorted(query.channels)
        if query.speaker is not None:
            sql += " AND u.speaker_id = ?"
            args.append(query.speaker)
        sql += f" ORDER BY {order} DESC LIMIT ?"
        args.append(query.limit + 1)
        with self._db.connection() as conn:
            rows = conn.execute(sql, args).fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        items = tuple(_utterance(r) for r in rows)
        rowids = tuple(int(r["id"]) for r in rows)
        return SearchPage(items, rowids[-1] if more and rowids else None, rowids)


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _COLUMNS.split(","))
