"""Is Redis reachable? (``/readyz``'s ``checks.redis``; liveness, ``/healthz``, never asks).

:meth:`RedisHealth.check` answers ``"up"`` or ``"down"`` within ``timeout_s`` whatever Redis
does (refuses, hangs, is half-way through a restart): callers at the same moment share one
``PING`` in flight, and a caller stops waiting for it at its timeout (the ping itself is bounded
by the client's command timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Literal

from voice_server.cluster.client import connection_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["RedisHealth", "State"]

State = Literal["up", "down"]


class RedisHealth:
    def __init__(self, client: Redis, timeout_s: float = 0.5) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self._client = client
        self.timeout_s = timeout_s
        self._probe: asyncio.Task[State] | None = None
        self.last: State = "down"

    async def check(self) -> State:
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._ping())
        try:
            self.last = await asyncio.wait_for(asyncio.shield(self._probe), self.timeout_s)
        except TimeoutError:
            self.last = "down"
        return self.last

    async def _ping(self) -> State:
        try:
            return "up" if await self._client.ping() else "down"
        except connection_errors():
            return "down"

    async def close(self) -> None:
        """Cancel a probe still in flight (at shutdown)."""
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
