"""The server's retention purge schedule: first 10 s after start, then every
``purge_interval_seconds`` (0: never), each run in a worker thread — never on the event loop.
The task is owned here: ``stop`` cancels it and waits (a run in progress finishes its
transaction in its thread)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from voice_server.calllog.purge import Purger
from voice_server.config import Config

__all__ = ["PurgeSchedule"]

log = logging.getLogger(__name__)
FIRST_DELAY = 10.0


class PurgeSchedule:
    def __init__(self, purger: Purger, config: Config) -> None:
        self._purger = purger
        self._interval = config.purge_interval_seconds
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._forever(), name="retention-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _forever(self) -> None:
        await asyncio.sleep(min(FIRST_DELAY, self._interval))
        while True:
            try:
                report = await asyncio.to_thread(self._purger.run, int(time.time() * 1000))
                self.runs += 1
                removed = sum(c.utterances for c in report.channels)
                if removed or report.spool_files:
                    log.info(
                        "retention purge",
                        extra={"utterances": removed, "seconds": report.seconds},
                    )
                del report  # not kept alive by this frame while it sleeps
            except Exception:  # the schedule survives one failed run (e.g. a locked database)
                log.exception("retention purge failed")
            await asyncio.sleep(self._interval)
