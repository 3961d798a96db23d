"""Periodic jobs that run once per deployment (the retention purge, the announcement scheduler's
claim, the webhook dispatcher's claim, the keyword matcher, emergency escalation).

Each run of a job is a *step*::

    with locks.step("retention-purge", every_s=3600) as held:
        if held:
            ...  # this node runs it; no other node does meanwhile

SQLite (one process): :class:`LocalJobLocks` always holds. PostgreSQL (several nodes):
:class:`PgJobLocks` opens a transaction on a connection of its own per job and takes
``pg_try_advisory_xact_lock`` with the job's key (:func:`job_key`); not acquired, the step is
*skipped* (another node runs it). With ``every_s``, the lock's transaction also reads and moves on
the job's ``job_run.last_ms`` (PostgreSQL's clock, not a node's): a step less than ``every_s``
after the last run anywhere is skipped too, so a job runs once per period across nodes, not once
per node; a step that raises rolls that back (the next node due runs it again). The step's own
writes use the job's usual connections; the lock's transaction ends (commit) after the step.

A dead node's session ends with its process and PostgreSQL frees its lock. A hung node's lock
connection sits idle in its transaction: ``idle_in_transaction_session_timeout`` (the lease, 60
s) ends that session. A step that runs longer is kept alive by a lease thread (``SELECT 1``
every lease / 3) for at most ``max_hold_s``. Counted in :class:`~voice_server.metrics.JobCounters`
(``voice_jobs_steps_total{job,outcome}``, ``voice_jobs_lock_waits_total{job}``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from voice_server.metrics import Family, JobCounters

if TYPE_CHECKING:
    import psycopg

__all__ = ["FAILED", "RAN", "SKIPPED", "JobLocks", "LocalJobLocks", "PgJobLocks", "job_key"]

log = logging.getLogger(__name__)

RAN, SKIPPED, FAILED = "ran", "skipped", "failed"
LEASE_S = 60.0  # idle_in_transaction_session_timeout of a lock connection
MAX_HOLD_S = 900.0  # the lease thread keeps a step's lock alive this long at most
EVERY_SLACK = 0.1  # a step is due this fraction of its period early (timers drift), 5 s at most


def job_key(job: str) -> int:
    """The job's advisory lock key: a signed 64-bit integer, the same on every node and run."""
    digest = hashlib.sha256(b"voice-server job:" + job.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class JobLocks(Protocol):
    counts: JobCounters

    def step(self, job: str, every_s: float = 0.0) -> AbstractContextManager[bool]: ...

    def families(self) -> list[Family]: ...

    def close(self) -> None: ...


class _Gates:
    """One step of a job at a time in this process (a second waits, counted)."""

    def __init__(self, counts: JobCounters) -> None:
        self._counts = counts
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}

    @contextmanager
    def __call__(self, job: str) -> Iterator[None]:
        with self._lock:
            gate = self._gates.setdefault(job, threading.Lock())
        if not gate.acquire(blocking=False):
            self._counts.waits[job] += 1
            gate.acquire()
        try:
            yield
        finally:
            gate.release()


class LocalJobLocks:
    """SQLite: one process runs every job, so every step holds (and is counted)."""

    def __init__(self) -> None:
        self.counts = JobCounters()
        self._gate = _Gates(self.counts)

    @contextmanager
    def step(self, job: str, every_s: float = 0.0) -> Iterator[bool]:
        with self._gate(job):
            try:
                yield True
            except BaseException:
                self.counts.steps[(job, FAILED)] += 1
                raise
            self.counts.steps[(job, RAN)] += 1

    def families(self) -> list[Family]:
        return self.counts.families()

    def close(self) -> None:
        pass


class PgJobLocks:
    """PostgreSQL: advisory transaction locks on a connection per job (see the module)."""

    def __init__(
        self, url: str, *, lease_s: float = LEASE_S, max_hold_s: float = MAX_HOLD_S
    ) -> None:
        self.url = url
        self.lease_s = lease_s
        self.max_hold_s = max_hold_s
        self.counts = JobCounters()
        self._gate = _Gates(self.counts)
        self._lock = threading.Lock()
        self._conns: dict[str, psycopg.Connection[Any]] = {}
        self._held: dict[str, tuple[psycopg.Connection[Any], float]] = {}
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def connection(self, job: str) -> psycopg.Connection[Any]:
        """The job's lock connection (a new one after a broken or closed one)."""
        from voice_server.store.pg import connect

        with self._lock:
            conn = self._conns.get(job)
        if conn is not None and not (conn.closed or conn.broken):
            return conn
        if conn is not None:
            conn.close()
        conn = connect(self.url)
        conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
            (str(int(self.lease_s * 1000)),),
        )
        with self._lock:
            self._conns[job] = conn
        return conn

    @contextmanager
    def step(self, job: str, every_s: float = 0.0) -> Iterator[bool]:
        with self._gate(job):
            try:
                conn = self.connection(job)
                conn.execute("BEGIN")
                held = self._acquire(conn, job, every_s)
            except Exception:
                self.counts.steps[(job, FAILED)] += 1
                self._end(job, commit=False)
                raise
            if not held:
                self._end(job, commit=False)
                self.counts.steps[(job, SKIPPED)] += 1
                yield False
                return
            self._lease(job, conn)
            try:
                yield True
            except BaseException:
                self.counts.steps[(job, FAILED)] += 1
                self._end(job, commit=False)
                raise
            self.counts.steps[(job, RAN)] += 1
            self._end(job, commit=True)

    @staticmethod
    def _acquire(conn: psycopg.Connection[Any], job: str, every_s: float) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (job_key(job),)).fetchone()
        if not row or not row[0]:
            return False
        if every_s <= 0:
            return True
        got = conn.execute(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint, "
            "(SELECT last_ms FROM job_run WHERE job = %s)",
            (job,),
        ).fetchone()
        assert got is not None
        now, last = int(got[0]), got[1]
        every_ms = int(every_s * 1000)
        if last is not None and now - int(last) < every_ms - min(every_ms * EVERY_SLACK, 5000):
            return False  # another node ran it less than a period ago
        conn.execute(
            "INSERT INTO job_run (job, last_ms) VALUES (%s, %s) "
            "ON CONFLICT (job) DO UPDATE SET last_ms = excluded.last_ms",
            (job, now),
        )
        return True

    def _end(self, job: str, *, commit: bool) -> None:
        """End the lock's transaction (which frees the lock). A connection lost meanwhile (the
        server ended the session) is dropped: the lock went with it; the next step reconnects."""
        with self._lock:
            self._held.pop(job, None)
            conn = self._conns.get(job)
        if conn is None or conn.closed:
            return
        try:
            conn.execute("COMMIT" if commit else "ROLLBACK")
        except Exception as exc:
            log.warning("job lock connection lost", extra={"job": job, "error": str(exc)})
            with contextlib.suppress(Exception):
                conn.close()

    # ------------------------------------------------------------------ the lease
    def _lease(self, job: str, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._held[job] = (conn, time.monotonic())
            if self._renewer is None:
                self._renewer = threading.Thread(
                    target=self._renew_forever, name="job-lock-lease", daemon=True
                )
                self._renewer.start()

    def _renew_forever(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                held = list(self._held.values())
            for conn, since in held:
                if time.monotonic() - since > self.max_hold_s:
                    continue  # a step hung this long: PostgreSQL ends its session
                with contextlib.suppress(Exception):
                    conn.execute("SELECT 1")

    def families(self) -> list[Family]:
        return self.counts.families()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
            self._held.clear()
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
