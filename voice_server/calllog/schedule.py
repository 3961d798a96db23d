"""The server's retention purge schedule: first 10 s after start, then every
``purge_interval_seconds`` (0: never), each run in a worker thread — never on the event loop.
The task is owned here: ``stop`` cancels it and waits (a run in progress finishes its
transaction in its thread).

On PostgreSQL several nodes share the database: each run is a step of the job lock
``retention-purge`` with the interval as its period, so one node purges per period (one audit
row per purged channel, not one per node). A node skipped meanwhile still sweeps its own data
directory (:meth:`~voice_server.calllog.purge.Purger.sweep_files`: each node has its own)."""

from __future__ import annotations

import asyncio
import logging
import time

from voice_server.calllog.purge import Purger, PurgeReport
from voice_server.config import Config
from voice_server.periodic import Periodic
from voice_server.store.job_lock import JobLocks, LocalJobLocks

__all__ = ["PurgeSchedule"]

log = logging.getLogger(__name__)
FIRST_DELAY = 10.0
JOB = "retention-purge"


class PurgeSchedule:
    def __init__(self, purger: Purger, config: Config, locks: JobLocks | None = None) -> None:
        self._purger = purger
        self._locks = locks or LocalJobLocks()
        self._interval = config.purge_interval_seconds
        self._periodic = Periodic(
            "retention-purge",
            self._interval,
            self._run_once,
            first_delay=min(FIRST_DELAY, self._interval),
        )
        self.runs = 0
        self.swept = 0  # runs skipped here (another node purged) that swept local files

    def start(self) -> None:
        if self._interval > 0:
            self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    def run_step(self, now_ms: int) -> PurgeReport | None:
        """One scheduled run (blocking): the purge if this node holds the job, else None after
        sweeping this node's expired files."""
        with self._locks.step(JOB, every_s=self._interval) as held:
            if held:
                return self._purger.run(now_ms)
        self._purger.sweep_files(now_ms)
        self.swept += 1
        return None

    async def _run_once(self) -> None:
        report = await asyncio.to_thread(self.run_step, int(time.time() * 1000))
        if report is None:
            return
        self.runs += 1
        removed = sum(c.utterances for c in report.channels)
        if removed or report.spool_files:
            log.info("retention purge", extra={"utterances": removed, "seconds": report.seconds})
