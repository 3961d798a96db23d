"""A bounded queue of events to publish (pure): offering never waits; when it is full the oldest
event is dropped and counted, so the hub and voice never wait on Redis."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

__all__ = ["EventQueue"]


class EventQueue:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an event queue holds at least one event")
        self.limit = limit
        self.dropped = 0
        self._items: deque[dict[str, Any]] = deque()
        self._ready = asyncio.Event()

    def offer(self, event: dict[str, Any]) -> None:
        if len(self._items) >= self.limit:
            self._items.popleft()
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def take(self) -> dict[str, Any]:
        """The oldest event, waiting for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)
