"""The dashboard's alert feed: every change of every alert, read from the store's alert event
sequence (so changes made by another process or node arrive too) and fanned out to the
subscribers allowed to see it (``/dashboard/events/ws``) and to in-process listeners (webhooks,
escalation).

A local write nudges the reader at once; otherwise it looks every :data:`POLL_SECONDS`.
Subscribers have bounded queues that drop their oldest message when full (counted, and the
subscriber is told how many); the reader never waits on a subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voice_server.alerts.model import Alert
from voice_server.alerts.store import AlertStore

__all__ = ["POLL_SECONDS", "AlertFeed", "Subscriber"]

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
QUEUE_LIMIT = 256

Visible = Callable[[Alert], bool]
Listener = Callable[[Alert], None]


class Subscriber:
    """One event-stream connection: what it may see, and a bounded queue of alerts."""

    def __init__(self, visible: Visible, limit: int = QUEUE_LIMIT) -> None:
        self.visible = visible  # replaced when the connection's rights are re-checked
        self.limit = limit
        self.queue: deque[Alert] = deque()
        self.dropped = 0
        self.wake = asyncio.Event()

    def offer(self, alert: Alert) -> bool:
        kept = True
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            kept = False
        self.queue.append(alert)
        self.wake.set()
        return kept


@dataclass(slots=True)
class FeedCounters:
    events: int = 0  # alert events read
    delivered: int = 0  # alerts queued for a subscriber
    dropped: int = 0  # ... dropped because a subscriber's queue was full
    listener_errors: int = 0


class AlertFeed:
    def __init__(self, store: AlertStore, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.subscribers: set[Subscriber] = set()
        self.listeners: list[Listener] = []
        self.counters = FeedCounters()
        self._seq = 0
        self._nudge = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def nudge(self) -> None:
        """Something was written here: read now (call on the event loop)."""
        self._nudge.set()

    def subscribe(self, visible: Visible) -> Subscriber:
        sub = Subscriber(visible)
        self.subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    async def start(self) -> None:
        self._seq = await asyncio.to_thread(self.store.last_event_seq)
        self._task = asyncio.create_task(self._run(), name="alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), self.poll_seconds)
            self._nudge.clear()
            try:
                await self.read_once()
            except Exception:  # the feed must not die (a database hiccup): try again
                log.exception("alert feed read failed")
                await asyncio.sleep(self.poll_seconds)

    async def read_once(self) -> int:
        """Deliver every alert event after the last one seen; how many were read."""
        events = await asyncio.to_thread(self.store.events_after, self._seq)
        if not events:
            return 0
        self._seq = events[-1][0]
        self.counters.events += len(events)
        ids = list(dict.fromkeys(alert_id for _, alert_id in events))
        alerts = await asyncio.to_thread(lambda: [self.store.get(i) for i in ids])
        for alert in alerts:
            if alert is not None:
                self.publish(alert)
        return len(events)

    def publish(self, alert: Alert) -> None:
        for sub in list(self.subscribers):
            try:
                visible = sub.visible(alert)
            except Exception:
                visible = False
            if visible:
                self.counters.delivered += 1
                if not sub.offer(alert):
                    self.counters.dropped += 1
        for listener in self.listeners:
            try:
                listener(alert)
            except Exception:
                self.counters.listener_errors += 1
                log.exception("alert listener failed", extra={"alert": alert.id})
