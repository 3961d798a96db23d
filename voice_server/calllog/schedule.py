"""The server's retention purge schedule: first 10 s after start, then every
``purge_interval_seconds`` (0: never), each run in a worker thread — never on the event loop.
The task is owned here: ``stop`` cancels it and waits (a run in progress finishes its
transaction in its thread)."""

from __future__ import annotations

import asyncio
import logging
import time

from voice_server.calllog.purge import Purger
from voice_server.config import Config
from voice_server.periodic import Periodic

__all__ = ["PurgeSchedule"]

log = logging.getLogger(__name__)
FIRST_DELAY = 10.0


class PurgeSchedule:
    def __init__(self, purger: Purger, config: Config) -> None:
        self._purger = purger
        self._interval = config.purge_interval_seconds
        self._periodic = Periodic(
            "retention-purge",
            self._interval,
            self._run_once,
            first_delay=min(FIRST_DELAY, self._interval),
        )
        self.runs = 0

    def start(self) -> None:
        if self._interval > 0:
            self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _run_once(self) -> None:
        report = await asyncio.to_thread(self._purger.run, int(time.time() * 1000))
        self.runs += 1
        removed = sum(c.utterances for c in report.channels)
        if removed or report.spool_files:
            log.info("retention purge", extra={"utterances": removed, "seconds": report.seconds})
