"""The transcription job queue on SQLite (:mod:`.jobqueue`): every write under ``BEGIN
IMMEDIATE`` (one writer at a time across the processes sharing the file); one machine, so its
clock is the lease clock; ``wait`` polls."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from voice_server.calllog.jobqueue import (
    ALREADY_DONE,
    COMMITTED,
    FENCED_OUT,
    Claim,
    QueueCounts,
    write_in,
)
from voice_server.calllog.model import Gap, Utterance
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

__all__ = ["SqliteJobQueue"]

_HELD = "id = ? AND worker = ? AND attempt = ? AND state = 'queued' AND lease_until_ms > ?"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteJobQueue:
    def __init__(self, db: Database) -> None:
        self._db = db

    def enqueue(self, jobs: Iterable[tuple[str, int]]) -> int:
        rows = list(jobs)
        if not rows:
            return 0
        with self._db.transaction() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO transcription_job (id, ready_ms, lease_until_ms) "
                "VALUES (?, ?, ?)",
                [(i, ms, ms) for i, ms in rows],
            )
            return conn.total_changes - before

    def claim(self, worker: str, lease_s: float) -> Claim | None:
        with self._db.transaction() as conn:
            now = _now_ms()
            row = conn.execute(
                "SELECT id, attempt, ready_ms FROM transcription_job "
                "WHERE state = 'queued' AND lease_until_ms < ? ORDER BY ready_ms LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE transcription_job SET worker = ?, attempt = attempt + 1, "
                "lease_until_ms = ? WHERE id = ?",
                (worker, now + int(lease_s * 1000), row[0]),
            )
        return Claim(str(row[0]), worker, int(row[1]) + 1, int(row[2]))

    def _held(self, claim: Claim, now: int) -> tuple[object, ...]:
        return (claim.id, claim.worker, claim.attempt, now)

    def extend(self, claim: Claim, lease_s: float) -> bool:
        with self._db.transaction() as conn:
            now = _now_ms()
            cur = conn.execute(
                f"UPDATE transcription_job SET lease_until_ms = ? WHERE {_HELD}",
                (now + int(lease_s * 1000), *self._held(claim, now)),
            )
            return cur.rowcount == 1

    def release(self, claim: Claim, delay_s: float = 0.0) -> bool:
        with self._db.transaction() as conn:
            now = _now_ms()
            cur = conn.execute(
                f"UPDATE transcription_job SET worker = '', lease_until_ms = ? WHERE {_HELD}",
                (now + int(delay_s * 1000), *self._held(claim, now)),
            )
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
            now = _now_ms()
            cur = conn.execute(
                "UPDATE transcription_job SET state = 'done', commits = commits + 1, done_ms = ? "
                f"WHERE {_HELD}",
                (now, *self._held(claim, now)),
            )
            if cur.rowcount != 1:
                return FENCED_OUT
            added = write_in(SqliteCallLog, conn, utterances, gap, burst_end_ms, committed_ms)
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
        with self._db.transaction() as conn:  # BEGIN IMMEDIATE: no claim or commit between
            now = _now_ms()
            row = conn.execute(
                "SELECT state FROM transcription_job WHERE id = ?", (burst_id,)
            ).fetchone()
            if row is not None and row[0] == "done":
                return ALREADY_DONE
            if row is None:  # before the server queued it: done, so its enqueue is a no-op
                ready = burst_end_ms or committed_ms
                conn.execute(
                    "INSERT INTO transcription_job (id, state, ready_ms, lease_until_ms, "
                    "commits, done_ms) VALUES (?, 'done', ?, ?, 1, ?)",
                    (burst_id, ready, ready, now),
                )
            else:  # queued, leased or not: done now, a holder's extend and commit are refused
                conn.execute(
                    "UPDATE transcription_job SET state = 'done', commits = commits + 1, "
                    "done_ms = ? WHERE id = ?",
                    (now, burst_id),
                )
            added = write_in(SqliteCallLog, conn, utterances, gap, burst_end_ms, committed_ms)
        return COMMITTED if added else ALREADY_DONE

    def wait(self, timeout_s: float) -> None:
        time.sleep(max(0.0, timeout_s))

    def sweep(self, keep_s: float) -> int:
        with self._db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM transcription_job WHERE state = 'done' AND done_ms < ?",
                (_now_ms() - int(keep_s * 1000),),
            )
            return cur.rowcount

    def counts(self) -> QueueCounts:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'queued'), "
                "count(*) FILTER (WHERE state = 'queued' AND lease_until_ms >= ?), "
                "count(*) FILTER (WHERE state = 'done'), "
                "count(*) FILTER (WHERE commits > 1) FROM transcription_job",
                (_now_ms(),),
            ).fetchone()
        return QueueCounts(*(int(v or 0) for v in row))

    def close(self) -> None:
        return None
