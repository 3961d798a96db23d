"""The transcription job queue on PostgreSQL (:mod:`.jobqueue`): leases on the database's clock
(workers on several machines), claims with ``FOR UPDATE SKIP LOCKED`` run once (the predicate is
checked again on the row the outer ``UPDATE`` locks, so two workers never hold one job), every
statement its own short transaction except the fenced and the live commits; queued jobs are
NOTIFYed on :data:`~voice_server.store.pg_schema.JOB_CHANNEL`, which :meth:`PgJobQueue.wait`
LISTENs to on a connection of its own (polling when nothing comes)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from voice_server.calllog.jobqueue import (
    ALREADY_DONE,
    COMMITTED,
    FENCED_OUT,
    Claim,
    QueueCounts,
    write_in,
)
from voice_server.calllog.model import Gap, Utterance
from voice_server.calllog.postgres import PgCallLog
from voice_server.store.database import DatabaseError
from voice_server.store.pg import PgDatabase, connect
from voice_server.store.pg_schema import JOB_CHANNEL

__all__ = ["PgJobQueue"]

NOW = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
_HELD = f"id = %s AND worker = %s AND attempt = %s AND state = 'queued' AND lease_until_ms > {NOW}"
# The locking SELECT is a MATERIALIZED CTE: run once. As a plain ``IN (SELECT … LIMIT 1 FOR
# UPDATE SKIP LOCKED)`` the planner made it the inner side of a nested-loop semi join, rescanned
# per outer row, each rescan skipping the row locked before and locking the next: one claim
# took every queued job (measured on PostgreSQL 15; tests/unit/test_jobqueue.py guards it).
_CLAIM = (
    "WITH next AS MATERIALIZED (SELECT id FROM transcription_job "
    f"WHERE state = 'queued' AND lease_until_ms < {NOW} "
    "ORDER BY ready_ms LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "UPDATE transcription_job SET worker = %s, attempt = attempt + 1, "
    f"lease_until_ms = {NOW} + %s "
    "WHERE id IN (SELECT id FROM next) "
    f"AND state = 'queued' AND lease_until_ms < {NOW} "
    "RETURNING id, attempt, ready_ms"
)

# A live commit's pass through the fence, one statement: a job not queued yet is inserted done
# (the server's later enqueue, ON CONFLICT DO NOTHING, leaves it); a queued one (leased or not)
# becomes done; a done one is locked, left as it is and returns no row.
_LIVE = (
    "INSERT INTO transcription_job AS j (id, state, ready_ms, lease_until_ms, commits, done_ms) "
    f"VALUES (%s, 'done', %s, %s, 1, {NOW}) "
    "ON CONFLICT (id) DO UPDATE SET state = 'done', commits = j.commits + 1, "
    f"done_ms = {NOW} WHERE j.state = 'queued' RETURNING j.commits"
)


class PgJobQueue:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db
        self._listener: Any = None

    def enqueue(self, jobs: Iterable[tuple[str, int]]) -> int:
        rows = list(jobs)
        if not rows:
            return 0
        with self._db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO transcription_job (id, ready_ms, lease_until_ms) "
                "SELECT i, r, r FROM unnest(%s::text[], %s::bigint[]) AS t (i, r) "
                "ON CONFLICT (id) DO NOTHING",
                ([r[0] for r in rows], [r[1] for r in rows]),
            )
            added = int(cur.rowcount)
            if added:
                conn.execute("SELECT pg_notify(%s, '')", (JOB_CHANNEL,))
        return added

    def claim(self, worker: str, lease_s: float) -> Claim | None:
        with self._db.connection() as conn:
            row = conn.execute(_CLAIM, (worker, int(lease_s * 1000))).fetchone()
        if row is None:
            return None
        return Claim(str(row[0]), worker, int(row[1]), int(row[2]))

    @staticmethod
    def _held(claim: Claim) -> tuple[object, ...]:
        return (claim.id, claim.worker, claim.attempt)

    def extend(self, claim: Claim, lease_s: float) -> bool:
        with self._db.connection() as conn:
            cur = conn.execute(
                f"UPDATE transcription_job SET lease_until_ms = {NOW} + %s WHERE {_HELD}",
                (int(lease_s * 1000), *self._held(claim)),
            )
            return cur.rowcount == 1

    def release(self, claim: Claim, delay_s: float = 0.0) -> bool:
        with self._db.transaction() as conn:
            cur = conn.execute(
                f"UPDATE transcription_job SET worker = '', lease_until_ms = {NOW} + %s "
                f"WHERE {_HELD}",
                (int(delay_s * 1000), *self._held(claim)),
            )
            if cur.rowcount == 1 and delay_s <= 0:
                conn.execute("SELECT pg_notify(%s, '')", (JOB_CHANNEL,))
            return cur.rowcount == 1

    def commit(
        self,
        claim: Claim,
        utterances: Sequence[Utterance],
        gap: Gap | None = None,
        *,
        burst_end_ms: int | None = None,
        committed_ms: int,
    ) -> str:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE transcription_job SET state = 'done', commits = commits + 1, "
                f"done_ms = {NOW} WHERE {_HELD}",
                self._held(claim),
            )
            if cur.rowcount != 1:
                return FENCED_OUT  # nothing changed: the transaction ends empty
            added = write_in(PgCallLog, conn, utterances, gap, burst_end_ms, committed_ms)
        return COMMITTED if added else ALREADY_DONE

    def commit_live(
        self,
        burst_id: str,
        utterances: Sequence[Utterance],
        gap: Gap | None = None,
        *,
        burst_end_ms: int | None = None,
        committed_ms: int,
    ) -> str:
        ready = burst_end_ms or committed_ms
        with self._db.transaction() as conn:
            # the job row locked (inserted done, or a queued one made done: a worker's fenced
            # UPDATE waits for this transaction and then finds it done); no row: already done
            row = conn.execute(_LIVE, (burst_id, ready, ready)).fetchone()
            if row is None:
                return ALREADY_DONE
            added = write_in(PgCallLog, conn, utterances, gap, burst_end_ms, committed_ms)
        return COMMITTED if added else ALREADY_DONE

    def wait(self, timeout_s: float) -> None:
        """Until a NOTIFY or ``timeout_s`` (the polling fallback, also while the database is
        unreachable: the listener is opened again on the next call)."""
        import psycopg

        try:
            if self._listener is None or self._listener.closed or self._listener.broken:
                self.close()
                self._listener = connect(self._db.url)
                self._listener.execute(f"LISTEN {JOB_CHANNEL}")
            for _ in self._listener.notifies(timeout=max(0.0, timeout_s), stop_after=1):
                break
        except (psycopg.Error, DatabaseError):
            self.close()
            time.sleep(max(0.0, timeout_s))

    def sweep(self, keep_s: float) -> int:
        with self._db.connection() as conn:
            cur = conn.execute(
                f"DELETE FROM transcription_job WHERE state = 'done' AND done_ms < {NOW} - %s",
                (int(keep_s * 1000),),
            )
            return int(cur.rowcount)

    def counts(self) -> QueueCounts:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'queued'), "
                f"count(*) FILTER (WHERE state = 'queued' AND lease_until_ms >= {NOW}), "
                "count(*) FILTER (WHERE state = 'done'), "
                "count(*) FILTER (WHERE commits > 1) FROM transcription_job"
            ).fetchone()
        assert row is not None
        return QueueCounts(*(int(v or 0) for v in row))

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()
