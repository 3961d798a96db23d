"""The call log on PostgreSQL: the same :class:`~voice_server.calllog.store.CallLog` semantics as
:class:`~voice_server.calllog.sqlite.SqliteCallLog` (schema: :mod:`voice_server.store.pg_schema`,
search: :mod:`.pgsearch`).

Every commit (an utterance or a gap) takes the transaction-level advisory lock
:data:`~voice_server.store.pg_schema.COMMIT_LOCK`: the done-check of a burst and its insert cannot
interleave with another writer's (a burst is committed once across processes), and commit events
get their seq in commit order, so a reader of :meth:`PgCallLog.events_after` never sees a seq
appear behind one it has read. Each event is also NOTIFYed on
:data:`~voice_server.store.pg_schema.COMMIT_CHANNEL` with its seq.
"""

from __future__ import annotations

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
from voice_server.calllog.normalize import short_grams
from voice_server.calllog.pgsearch import (
    WINDOW,
    bound_sql,
    id_range,
    search_sql,
    window_sizes,
    window_sql,
    worth_widening,
)
from voice_server.calllog.replay import replay_args, replay_page, replay_sql
from voice_server.calllog.rows import GAP_COLUMNS, NORM, gap_values, row_values, utterance_of
from voice_server.store.pg import PgDatabase, connect
from voice_server.store.pg_schema import COMMIT_CHANNEL, COMMIT_LOCK

__all__ = ["PgCallLog"]

_FIELDS = (
    "id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, norm, words, model, "
    "language, clip, burst_end_ms, committed_ms, kind, broadcast_id, target_sub, grams"
)
_INSERT = f"INSERT INTO utterance ({_FIELDS}) VALUES ({', '.join(['%s'] * 19)})"
_NAMES = [n.strip() for n in _FIELDS.split(",")]


def _values(rowid: int, u: Utterance, burst_end_ms: int | None, committed_ms: int) -> list[Any]:
    row = row_values(rowid, u, burst_end_ms, committed_ms)
    return [*row, sorted(short_grams(row[NORM]))]


def _dict(names: list[str], row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(names, row, strict=True))


class PgCallLog:
    def __init__(self, db: PgDatabase, *, window: int = WINDOW) -> None:
        self._db = db
        self.window = window  # newest rows checked before the indexes (pgsearch)

    # ------------------------------------------------------------------ writes
    def add_utterance(
        self, utterance: Utterance, *, burst_end_ms: int | None = None, committed_ms: int
    ) -> bool:
        with self._db.transaction() as conn:
            return self.add_utterance_in(conn, utterance, burst_end_ms, committed_ms)

    @classmethod
    def add_utterance_in(
        cls, conn: Any, utterance: Utterance, burst_end_ms: int | None, committed_ms: int
    ) -> bool:
        """:meth:`add_utterance` in the caller's transaction (the job queue's fenced commit)."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
        if cls._is_done(conn, utterance.id):
            return False
        rowid = rowid_of(utterance.id)
        while conn.execute("SELECT 1 FROM utterance WHERE id = %s", (rowid,)).fetchone():
            rowid += 1  # same millisecond and same 10 random bits: take the next id
        conn.execute(_INSERT, _values(rowid, utterance, burst_end_ms, committed_ms))
        cls._event(conn, "utterance", utterance.id, utterance.channel, committed_ms)
        return True

    @staticmethod
    def _event(conn: Any, kind: str, ref: str, channel: str, created_ms: int) -> None:
        row = conn.execute(
            "INSERT INTO commit_event (kind, ref, channel, created_ms) VALUES (%s, %s, %s, %s) "
            "RETURNING seq",
            (kind, ref, channel, created_ms),
        ).fetchone()
        conn.execute("SELECT pg_notify(%s, %s)", (COMMIT_CHANNEL, str(row[0])))

    def add_many(self, utterances: Iterable[Utterance], *, committed_ms: int) -> int:
        """Bulk load in one transaction (COPY; seeding, the benchmark, ``db copy``): no
        done-check and no commit events, so the burst ids must be new. Returns how many."""
        count = 0
        taken: set[int] = set()
        with self._db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
            with conn.cursor().copy(f"COPY utterance ({_FIELDS}) FROM STDIN") as copy:
                for u in utterances:
                    rowid = rowid_of(u.id)
                    while rowid in taken:
                        rowid += 1
                    taken.add(rowid)
                    copy.write_row(_values(rowid, u, None, committed_ms))
                    count += 1
        return count

    def add_gap(self, gap: Gap, *, created_ms: int) -> bool:
        with self._db.transaction() as conn:
            return self.add_gap_in(conn, gap, created_ms)

    @classmethod
    def add_gap_in(cls, conn: Any, gap: Gap, created_ms: int) -> bool:
        """:meth:`add_gap` in the caller's transaction."""
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
        if cls._is_done(conn, gap.id):
            return False
        conn.execute(
            f"INSERT INTO gap ({GAP_COLUMNS}) VALUES ({', '.join(['%s'] * 9)})",
            gap_values(gap, created_ms),
        )
        return True

    @staticmethod
    def _is_done(conn: Any, burst_id: str) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM utterance WHERE uid = %s) "
            "OR EXISTS (SELECT 1 FROM gap WHERE uid = %s)",
            (burst_id, burst_id),
        ).fetchone()
        return bool(row[0])

    def delete(self, burst_ids: Iterable[str]) -> int:
        """Both indexes are the table's own: a deleted row leaves them with it."""
        ids = list(burst_ids)
        with self._db.transaction() as conn:
            cur = conn.execute("DELETE FROM utterance WHERE uid = ANY(%s::text[])", (ids,))
            return int(cur.rowcount)

    # ------------------------------------------------------------------ commit events
    def events_after(self, seq: int, limit: int = 100) -> list[CommitEvent]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT seq, kind, ref, channel, created_ms FROM commit_event WHERE seq > %s "
                "ORDER BY seq LIMIT %s",
                (seq, max(1, min(limit, 1000))),
            ).fetchall()
        return [CommitEvent(*r) for r in rows]

    def wait_events(self, seq: int, timeout_s: float, limit: int = 100) -> list[CommitEvent]:
        """:meth:`events_after`, waiting up to ``timeout_s`` for a commit when there is none yet:
        woken by the NOTIFY of any writer on any machine (LISTEN on a connection of its own;
        the events are read again after LISTEN, so a commit in between is not missed)."""
        got = self.events_after(seq, limit)
        if got or timeout_s <= 0:
            return got
        listener = connect(self._db.url)
        try:
            listener.execute(f"LISTEN {COMMIT_CHANNEL}")
            got = self.events_after(seq, limit)
            if got:
                return got
            for _ in listener.notifies(timeout=timeout_s, stop_after=1):
                break
        finally:
            listener.close()
        return self.events_after(seq, limit)

    def last_event_seq(self) -> int:
        with self._db.connection() as conn:
            row = conn.execute("SELECT max(seq) FROM commit_event").fetchone()
        return int(row[0] or 0) if row else 0

    # ------------------------------------------------------------------ reads
    def done(self, burst_ids: Iterable[str]) -> set[str]:
        ids = list(burst_ids)
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT uid FROM utterance WHERE uid = ANY(%s::text[]) "
                "UNION SELECT uid FROM gap WHERE uid = ANY(%s::text[]) "
                "UNION SELECT broadcast_id FROM utterance WHERE broadcast_id = ANY(%s::text[])",
                (ids, ids, ids),
            ).fetchall()
        return {r[0] for r in rows}

    def get(self, burst_id: str) -> Utterance | None:
        with self._db.connection() as conn:
            cur = conn.execute(f"SELECT {_FIELDS} FROM utterance WHERE uid = %s", (burst_id,))
            row = cur.fetchone()
        return utterance_of(_dict(_NAMES, row)) if row else None

    def gaps(
        self, *, channels: frozenset[str] | None, since_ms: int | None, until_ms: int | None
    ) -> list[Gap]:
        sql = (
            "SELECT uid, channel, speaker_id, speaker_name, start_ms, end_ms, reason, detail "
            "FROM gap WHERE start_ms >= %s AND start_ms <= %s"
        )
        args: list[Any] = [since_ms or 0, until_ms if until_ms is not None else 1 << 62]
        if channels is not None:
            sql += " AND channel = ANY(%s::text[])"
            args.append(sorted(channels))
        with self._db.connection() as conn:
            rows = conn.execute(sql + " ORDER BY start_ms DESC LIMIT 1000", args).fetchall()
        return [Gap(*r) for r in rows]

    def commit_latencies_ms(self, since_ms: int) -> list[int]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT committed_ms - burst_end_ms FROM utterance "
                "WHERE committed_ms >= %s AND burst_end_ms IS NOT NULL",
                (since_ms,),
            ).fetchall()
        return [int(r[0]) for r in rows]

    def search(self, query: SearchQuery) -> SearchPage:
        """Newest first: the newest rows, then the rest by index (:mod:`.pgsearch`)."""
        span = id_range(query)
        if span is None:
            return SearchPage()
        lo, hi = span
        want = query.limit + 1
        rows: list[tuple[Any, ...]] = []
        names: list[str] = []
        top = hi  # everything above top has been checked
        with self._db.transaction() as conn:
            conn.execute("SET LOCAL enable_bitmapscan = off")
            conn.execute("SET LOCAL enable_seqscan = off")
            small, large = window_sizes(self.window)
            for size in (small, large):
                row = conn.execute(*bound_sql(query, lo, hi, size)).fetchone()
                bound = int(row[0]) + 1 if row and row[0] is not None else lo
                if bound <= top:
                    names, got = self._rows(conn, *window_sql(query, bound, top, want - len(rows)))
                    rows += got
                    top = bound - 1
                if len(rows) >= want or top < lo or not worth_widening(len(rows), want):
                    break
            if len(rows) < want and top >= lo:
                conn.execute("SET LOCAL enable_bitmapscan = on")
                conn.execute("SET LOCAL enable_seqscan = on")
                conn.execute("SET LOCAL enable_indexscan = off")
                names, older = self._rows(conn, *search_sql(query, lo, top, want - len(rows)))
                rows += older
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        rowids = tuple(int(r[0]) for r in rows)
        return SearchPage(
            tuple(utterance_of(_dict(names, r)) for r in rows),
            rowids[-1] if more and rowids else None,
            rowids,
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
            rows = conn.execute(replay_sql(_FIELDS, "%s"), args).fetchall()
        return replay_page(rows, limit, lambda r: utterance_of(_dict(_NAMES, r)))

    @staticmethod
    def _rows(conn: Any, sql: str, args: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = conn.execute(sql, args)
        return [d.name for d in cur.description or ()], list(cur.fetchall())
