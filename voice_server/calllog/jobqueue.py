"""The transcription job queue: a job per ended burst, claimed under a lease (pure values and the
protocol; SQLite: :mod:`.jobqueue_sqlite`, PostgreSQL: :mod:`.jobqueue_pg`).

- ``claim`` is one short transaction: the oldest queued job whose lease is free gets this worker's
  name, ``attempt + 1`` and a lease of ``lease_s`` (PostgreSQL: ``UPDATE … WHERE id IN (SELECT …
  FOR UPDATE SKIP LOCKED LIMIT 1)`` with the predicate rechecked on the row; SQLite: the same
  under ``BEGIN IMMEDIATE``).
- ``extend`` pushes the lease on while the worker transcribes; it fails once the lease has run
  out (the worker then gives the burst up).
- ``commit`` is fenced and idempotent: in one transaction the job must still be queued, held by
  this worker *and* attempt, with its lease running; it becomes done (``commits`` + 1: a counter
  that proves no burst passed the fence twice) and the utterance rows or the gap are written
  with the call log's done-check. A lost fence writes nothing (:data:`FENCED_OUT`).
- ``commit_live`` is the commit of a burst transcribed without a claim (live over the link, as it
  was spoken): in one transaction, a job already done writes nothing (:data:`ALREADY_DONE`);
  otherwise the job becomes done (``commits`` + 1; a job not queued yet — the server queues it
  after the burst's spool file is closed — is inserted done, so that the later ``enqueue``
  leaves it alone) and the rows or the gap are written with the call log's done-check. A job
  leased by a worker at that moment is taken from it: the live commit is the burst's one pass
  through the fence, and the worker's later ``extend`` and fenced ``commit`` are refused
  (:data:`FENCED_OUT`), so no burst is written twice and ``commits`` stays at most 1.
- done jobs are deleted by ``sweep`` after ``keep_s`` (the table stays small);
- ``wait`` returns when jobs may have been queued (PostgreSQL: LISTEN/NOTIFY) or after the
  polling timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from voice_server.calllog.model import Gap, Utterance

__all__ = [
    "ALREADY_DONE",
    "COMMITTED",
    "FENCED_OUT",
    "Claim",
    "JobQueue",
    "QueueCounts",
    "WritesInTransaction",
    "write_in",
]

COMMITTED = "committed"
ALREADY_DONE = "already_done"  # the fence held, the call log had the burst already
FENCED_OUT = "fenced_out"  # the lease was lost: nothing written


@dataclass(frozen=True, slots=True)
class Claim:
    id: str  # the burst id
    worker: str
    attempt: int
    ready_ms: int  # when the job was queued (the burst's end)


@dataclass(frozen=True, slots=True)
class QueueCounts:
    queued: int = 0  # waiting or leased
    leased: int = 0
    done: int = 0
    twice: int = 0  # done jobs whose fence passed more than once (must stay 0)


class JobQueue(Protocol):
    def enqueue(self, jobs: Iterable[tuple[str, int]]) -> int:
        """Queue ``(burst id, ready_ms)`` pairs, claimable from ``ready_ms`` on (oldest first;
        a known id is left alone); how many are new."""
        ...

    def claim(self, worker: str, lease_s: float) -> Claim | None: ...

    def extend(self, claim: Claim, lease_s: float) -> bool: ...

    def release(self, claim: Claim, delay_s: float = 0.0) -> bool:
        """Give a held job back, claimable again after ``delay_s``."""
        ...

    def commit(
        self,
        claim: Claim,
        utterances: Sequence[Utterance],
        gap: Gap | None = None,
        *,
        burst_end_ms: int | None = None,
        committed_ms: int,
    ) -> str:
        """:data:`COMMITTED`, :data:`ALREADY_DONE` or :data:`FENCED_OUT` (see the module doc)."""
        ...

    def commit_live(
        self,
        burst_id: str,
        utterances: Sequence[Utterance],
        gap: Gap | None = None,
        *,
        burst_end_ms: int | None = None,
        committed_ms: int,
    ) -> str:
        """An unclaimed (live) commit: :data:`COMMITTED` or :data:`ALREADY_DONE`, never
        :data:`FENCED_OUT` (see the module doc)."""
        ...

    def wait(self, timeout_s: float) -> None: ...

    def sweep(self, keep_s: float) -> int: ...

    def counts(self) -> QueueCounts: ...

    def close(self) -> None: ...


class WritesInTransaction(Protocol):
    """A call log's done-checked writes in the caller's transaction (the classes
    :class:`~voice_server.calllog.sqlite.SqliteCallLog` and
    :class:`~voice_server.calllog.postgres.PgCallLog`)."""

    def add_utterance_in(
        self, conn: Any, utterance: Utterance, burst_end_ms: int | None, committed_ms: int, /
    ) -> bool: ...

    def add_gap_in(self, conn: Any, gap: Gap, created_ms: int, /) -> bool: ...


def write_in(
    log: WritesInTransaction,
    conn: Any,
    utterances: Sequence[Utterance],
    gap: Gap | None,
    burst_end_ms: int | None,
    committed_ms: int,
) -> bool:
    """A commit's rows or gap in its transaction; whether anything was new."""
    added = False
    for row in utterances:
        added |= log.add_utterance_in(conn, row, burst_end_ms, committed_ms)
    if gap is not None:
        added |= log.add_gap_in(conn, gap, committed_ms)
    return added
