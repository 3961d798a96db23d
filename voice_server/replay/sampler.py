"""The presence sampler: every :data:`~voice_server.replay.presence.SAMPLE_MS` it records which
users have connected media in which channel (a task on the event loop, owned and cancelled by the
app's lifespan; one pass over the sessions, nothing per packet)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from voice_server.replay.presence import PresenceLog

__all__ = ["PresenceSampler"]

log = logging.getLogger(__name__)


class PresenceSampler:
    def __init__(
        self, presence: PresenceLog, connected: Callable[[], Iterable[tuple[str, str]]]
    ) -> None:
        self.presence = presence
        self._connected = connected  # (channel, user) of every session with connected media
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        period = self.presence.period_ms / 1000
        while True:
            try:
                self.presence.sample(time.time_ns() // 1_000_000, list(self._connected()))
            except Exception:  # a bug here must not end presence for good
                log.exception("presence sample failed")
            await asyncio.sleep(period)
