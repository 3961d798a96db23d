"""A task that runs one step every ``period`` seconds until stopped (the presence sampler, the
announcement scheduler). It owns its task: ``stop`` cancels and awaits it; a step that raises is
logged and the next one runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Periodic"]

log = logging.getLogger(__name__)


class Periodic:
    def __init__(
        self,
        name: str,
        period: float,
        step: Callable[[], Awaitable[object]],
        *,
        first_delay: float = 0.0,
    ) -> None:
        self.name = name
        self.period = period
        self.first_delay = first_delay
        self._step = step
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        if self.first_delay:
            await asyncio.sleep(self.first_delay)
        while True:
            try:
                await self._step()
            except Exception:  # one bad step must not end the task for good
                log.exception("%s step failed", self.name)
            await asyncio.sleep(self.period)
