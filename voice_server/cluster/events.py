"""Cross-node events (live view, alerts, console) over Redis pub/sub, with a full resync after
every (re)connection.

Pub/sub delivers a message only to subscribers connected at that moment: whatever was published
while a subscriber's connection was down is lost. So :class:`EventSubscriber` runs its own
connection loop (redis-py's asyncio pub/sub does not reconnect reliably by itself): subscribe,
wait until Redis confirms every topic, then call ``on_resync`` (the caller reloads the full
state from its source of truth: its first call is the initial load), then hand each event to
``on_event``. A lost connection (an error, or no answer to a ``PING`` within ``ping_s`` × 3 on
an idle connection: a hung Redis) closes it and starts over after a backoff, with a new resync.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from voice_server.cluster.backoff import Backoff
from voice_server.cluster.client import (
    abandoned_on_cancel,
    cancelled_meanwhile,
    connection_errors,
    guarded,
)
from voice_server.cluster.keys import Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["EventSubscriber", "publish"]

log = logging.getLogger("voice_server.cluster.events")
OnEvent = Callable[[str, dict[str, Any]], Awaitable[None]]
OnResync = Callable[[], Awaitable[None]]


class SubscriptionLost(ConnectionError):
    """The pub/sub connection stopped answering."""


async def publish(client: Redis, keys: Keys, topic: str, event: dict[str, Any]) -> int:
    """Publish ``event`` (JSON) on ``topic``: how many subscribers got it (0 is normal). Raises
    ClusterUnavailable."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return int(await guarded(client.publish(keys.events(topic), data)))


class EventSubscriber:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        topics: Iterable[str],
        on_event: OnEvent,
        on_resync: OnResync,
        *,
        ping_s: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._keys = keys
        self._channels = sorted({keys.events(t) for t in topics})
        if not self._channels:
            raise ValueError("an event subscriber needs at least one topic")
        self._on_event = on_event
        self._on_resync = on_resync
        self._ping_s = ping_s
        self._backoff = backoff or Backoff()
        self.resyncs = 0
        self.reconnects = 0
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        """Subscribe and deliver until cancelled; every failure is followed by a new attempt."""
        errors: tuple[type[BaseException], ...] = (*connection_errors(), SubscriptionLost)
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._subscribe(pubsub)
                await self._on_resync()
                self.resyncs += 1
                self._backoff.reset()
                await self._deliver(pubsub)
            except errors as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                self.subscribed.clear()
                self.reconnects += 1
                delay = self._backoff.next()
                log.warning("cluster events lost=%s retry_s=%.2f", exc or type(exc), delay)
                await asyncio.sleep(delay)
            finally:
                self.subscribed.clear()
                await _close(pubsub)

    async def _subscribe(self, pubsub: PubSub) -> None:
        await abandoned_on_cancel(pubsub.subscribe(*self._channels))
        waiting = set(self._channels)
        deadline = time.monotonic() + 3 * self._ping_s
        while waiting:
            if time.monotonic() > deadline:
                raise SubscriptionLost("no subscribe confirmation")
            msg = await abandoned_on_cancel(pubsub.get_message(timeout=self._ping_s))
            if msg and msg["type"] == "subscribe":
                waiting.discard(str(msg["channel"]))
            elif msg and msg["type"] == "message":  # published after our subscription: keep
                await self._event(msg)
        self.subscribed.set()

    async def _deliver(self, pubsub: PubSub) -> None:
        heard = time.monotonic()
        pinged = False
        while True:
            msg = await abandoned_on_cancel(pubsub.get_message(timeout=self._ping_s))
            now = time.monotonic()
            if msg is not None:
                heard, pinged = now, False
                if msg["type"] == "message":
                    await self._event(msg)
                continue
            if now - heard > 3 * self._ping_s:
                raise SubscriptionLost(f"no answer for {now - heard:.1f} s")
            if not pinged and now - heard >= self._ping_s:
                await abandoned_on_cancel(pubsub.ping())
                pinged = True

    async def _event(self, msg: dict[str, Any]) -> None:
        try:
            topic = self._keys.topic_of(str(msg["channel"]))
            event = json.loads(msg["data"])
            if not isinstance(event, dict):
                raise ValueError("not an object")
        except ValueError as exc:  # JSONDecodeError is a ValueError
            log.warning("cluster events skipped=%s", exc)
            return
        try:
            await self._on_event(topic, event)
        except Exception:
            log.exception("cluster events handler failed on topic %s", topic)


CLOSE_S = 2.0


async def _close(pubsub: PubSub) -> None:
    # bounded and left behind on cancel: closing after a Redis restart may never end
    try:
        await asyncio.wait_for(abandoned_on_cancel(pubsub.aclose()), CLOSE_S)
    except Exception:  # closing a dead connection may fail; it is gone either way
        log.debug("cluster events: closing the pub/sub connection failed", exc_info=True)
