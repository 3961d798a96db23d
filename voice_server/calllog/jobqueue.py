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
- done jobs are deleted by ``sweep`` after ``keep_s`` (the table stays small);
- ``wait`` returns when jobs may have been queued (PostgreSQL: LISTEN/NOTIFY) or after the
  polling timeout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from voice_server.calllog.model import Gap, Utterance

__all__ = ["ALREADY_DONE", "COMMITTED", "FENCED_OUT", "Claim", "JobQueue", "QueueCounts"]

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

    def wait(self, timeout_s: float) -> None: ...

    def sweep(self, keep_s: float) -> int: ...

    def counts(self) -> QueueCounts: ...

    def close(self) -> None: ...
