"""A transcription worker of the shared job queue (:mod:`voice_server.calllog.jobqueue`): the
catch-up path of a sidecar started with ``--database-url``.

Every :data:`SCAN_SECONDS` it queues the spool's ended bursts that the call log does not have
(the server queues them at the end of each burst too; queuing is idempotent), on PostgreSQL each
once its clip is in the shared store (put there first when the server's upload has not), and
moves committed ones to their clip path. A claimed burst whose spool file is not on this machine
(recorded by another node) is read from the shared ClipStore. It claims up to ``jobs`` bursts at
a time under a lease of ``lease_s``, pushes the lease on every third of it while the engine
transcribes, and gives a burst up when the lease is lost (another worker has it, or a sidecar
committed it live, which marks the job done: the fenced commit would write nothing anyway).
Idle, it sleeps in :meth:`JobQueue.wait` (PostgreSQL: woken by NOTIFY; else polling).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from voice_server.calllog.burst import DONE, BurstMeta, burst_id_of, clip_path
from voice_server.calllog.clips import ClipStore
from voice_server.calllog.jobqueue import Claim, JobQueue
from voice_server.calllog.model import Gap
from voice_server.calllog.ogg import OggError, read_ogg_opus
from voice_server.calllog.store import CallLog
from voice_server.transcribe.catchup import CatchUp
from voice_server.transcribe.engine import Engine, Job, _now_ms

__all__ = ["QueueWorker", "QueueWorkerCounters"]

log = logging.getLogger(__name__)
SCAN_SECONDS = 2.0
SCAN_GRACE_MS = 15_000  # a spool file this young is left to the server's own queuing
POLL_SECONDS = 1.0  # the polling fallback when no NOTIFY comes
BUSY_POLL_SECONDS = 0.05  # while transcribing: how soon a finished job makes room (no query)
LEASE_SECONDS = 30.0
KEEP_DONE_SECONDS = 600.0  # done jobs (with their fence counter) are swept after this
SWEEP_SECONDS = 60.0
RETRY_SECONDS = 2.0  # a job given back (its burst live here, its file not there yet)
MAX_ATTEMPTS = 20  # then a gap: clip_missing (no audio anywhere) or transcription_failed


@dataclass(slots=True)
class QueueWorkerCounters:
    claimed: int = 0
    queued: int = 0
    released: int = 0
    leases_lost: int = 0
    missing: int = 0
    failed: int = 0


class QueueWorker:
    def __init__(
        self,
        data_dir: Path,
        engine: Engine,
        calllog: CallLog,
        queue: JobQueue,
        *,
        name: str,
        lease_s: float = LEASE_SECONDS,
        jobs: int = 1,
        scan: bool = True,
        clips: ClipStore | None = None,
    ) -> None:
        self.clips = clips  # bursts of other nodes (no spool file here): the shared store
        self.catchup = CatchUp(data_dir, engine, calllog)
        self.engine = engine
        self.calllog = calllog
        self.queue = queue
        self.name = name
        self.lease_s = lease_s
        self.jobs = max(1, jobs)
        self.scan_spool = scan
        self.counters = QueueWorkerCounters()
        self.current: dict[str, Job] = {}
        self._extended = 0.0
        self._scanned = 0.0
        self._swept = 0.0

    # ------------------------------------------------------------------ loop
    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set (blocking: run in a thread)."""
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("transcription queue step failed")
                stop.wait(POLL_SECONDS)
                continue
            if self.current:
                job = next(iter(self.current.values()))
                job.finished.wait(min(self.lease_s / 3, BUSY_POLL_SECONDS))
            else:
                self.queue.wait(POLL_SECONDS)
        for job in self.current.values():
            if not job.finished.is_set():
                self.engine.abort(job)
                if job.claim is not None:
                    with contextlib.suppress(Exception):
                        self.queue.release(job.claim)

    def step(self) -> None:
        now = time.monotonic()
        if self.scan_spool and now - self._scanned >= SCAN_SECONDS:
            self._scanned = now
            self.scan()
        if now - self._swept >= SWEEP_SECONDS:
            self._swept = now
            self.queue.sweep(KEEP_DONE_SECONDS)
        self._keep_leases(now)
        while len(self.current) < self.jobs:
            claim = self.queue.claim(self.name, self.lease_s)
            if claim is None:
                return
            self.counters.claimed += 1
            self._start(claim)

    def _keep_leases(self, now: float) -> None:
        for burst_id, job in list(self.current.items()):
            if job.finished.is_set():
                del self.current[burst_id]
                if job.outcome is None and job.claim is not None and not job.aborted:
                    self.counters.failed += 1  # the engine failed on it: back, to retry
                    self.queue.release(job.claim, RETRY_SECONDS)
        if not self.current or now - self._extended < self.lease_s / 3:
            return
        self._extended = now
        for burst_id, job in list(self.current.items()):
            assert job.claim is not None
            if job.finished.is_set() or self.queue.extend(job.claim, self.lease_s):
                continue
            if job.finished.wait(1.0):  # refused because it was just committed: not lost
                continue
            self.counters.leases_lost += 1
            log.warning(  # or the burst was committed live meanwhile (the job is done)
                "transcription lease lost: burst given up", extra={"burst": burst_id}
            )
            self.engine.abort(job)
            del self.current[burst_id]

    def scan(self) -> None:
        """Queue the spool's bursts the call log lacks; move committed ones to their clip."""
        spool = self.catchup.spool
        try:
            entries = [(e.name, e.stat().st_mtime_ns) for e in os.scandir(spool)]
        except FileNotFoundError:
            return
        found = {
            i: mtime // 1_000_000
            for name, mtime in entries
            if name.endswith(DONE) and (i := burst_id_of(name)) is not None
        }
        done = self.calllog.done(found)
        for burst_id in done:
            if burst_id not in self.engine.active:
                self.catchup.move(burst_id)
        old = _now_ms() - SCAN_GRACE_MS  # newer files: the server queues them (live grace)
        pending = [(i, ms) for i, ms in sorted(found.items()) if i not in done and ms < old]
        if pending and self.clips is not None:  # its clip first: a worker elsewhere reads it
            lacking = self.clips.lacking([i for i, _ in pending])
            pending = [(i, ms) for i, ms in pending if i not in lacking or self._share(i, spool)]
        self.counters.queued += self.queue.enqueue(pending)

    def _share(self, burst_id: str, spool: Path) -> bool:
        """Upload a spool file's clip the server did not; False: not now (next scan)."""
        assert self.clips is not None
        try:
            data = (spool / f"{burst_id}{DONE}").read_bytes()
            self.clips.put(clip_path(BurstMeta.from_tags(read_ogg_opus(data).tags)), data)
        except (OSError, OggError, ValueError):
            return True  # damaged or gone: queued all the same, the catch-up reports it
        except Exception:
            log.warning("could not upload a spool file's clip", extra={"burst": burst_id})
            return False  # not queued yet: the next scan tries again
        return True

    # ------------------------------------------------------------------ one job
    def _start(self, claim: Claim) -> None:
        path = self.catchup.spool / f"{claim.id}{DONE}"
        if claim.attempt > MAX_ATTEMPTS:  # failed (or its workers died) this often: give up
            self._give_up(claim, "transcription_failed", f"{claim.attempt - 1} attempts")
            return
        if claim.id in self.engine.active:  # transcribed live here right now
            self._release(claim)
            return
        if self.calllog.done([claim.id]):  # committed live meanwhile: nothing to transcribe
            self.queue.commit(claim, (), committed_ms=_now_ms())
            return
        data = None if path.is_file() or self.clips is None else self.clips.of_burst(claim.id)
        if not path.is_file() and data is None:
            if claim.attempt >= MAX_ATTEMPTS:
                self.counters.missing += 1
                self._give_up(claim, "clip_missing", "no node had its audio")
            else:
                self._release(claim)
            return
        job = self.catchup.start_from(claim.id, data, claim)
        if job is None:  # damaged (a gap was recorded, the file moved aside) or live meanwhile
            if self.calllog.done([claim.id]):
                self.queue.commit(claim, (), committed_ms=_now_ms())
            else:
                self._release(claim)
            return
        self.current[claim.id] = job

    def _give_up(self, claim: Claim, reason: str, detail: str) -> None:
        """A gap record in the burst's place (fenced like a commit)."""
        start_ms = int(claim.id[:13])
        gap = Gap(claim.id, "?", "?", "?", start_ms, start_ms, reason, detail)
        self.queue.commit(claim, (), gap, committed_ms=_now_ms())
        log.warning("transcription given up: gap recorded", extra={"burst": claim.id})

    def _release(self, claim: Claim) -> None:
        self.counters.released += 1
        self.queue.release(claim, RETRY_SECONDS)
