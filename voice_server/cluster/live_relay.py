"""The live view across nodes (README "Live view across nodes"): this node's live-view changes
go out on the deployment's ``live`` topic, the other nodes' come in and are handed to the live
view (``target``: the dashboard's LiveHub, seen through :class:`LiveTarget`).

- Out: :meth:`LiveRelay.offer` only queues (:class:`EventQueue`: bounded, the oldest dropped
  and counted); one task publishes. A publish that fails (Redis away) is counted and the event
  is lost: the state that follows a reconnection repairs the picture.
- In: an :class:`EventSubscriber` on the topic; our own events are ignored. At every
  (re)subscription the other nodes' part is cleared and this node publishes ``sync`` (every
  other node answers with its full ``state``) and its own ``state``. Every heartbeat the other
  nodes' part is narrowed to the nodes with a live report in Redis (one that died without a
  word disappears within the node TTL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from voice_server.cluster.client import ClusterUnavailable, cancelled_meanwhile
from voice_server.cluster.event_queue import EventQueue
from voice_server.cluster.events import EventSubscriber, publish
from voice_server.cluster.keys import Keys
from voice_server.cluster.live_events import TOPIC, decode, encode
from voice_server.metrics import Family

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["LiveRelay", "LiveTarget"]

log = logging.getLogger(__name__)
QUEUE_LIMIT = 1024


class LiveTarget(Protocol):
    def on_remote(self, origin: str, incarnation: str, event: dict[str, Any]) -> None: ...

    def retain_remote(self, live: set[str]) -> None: ...

    def clear_remote(self) -> None: ...

    def local_state(self) -> dict[str, list[dict[str, Any]]]: ...


class LiveRelay:
    def __init__(
        self,
        client: Redis,
        sub_client: Redis,
        keys: Keys,
        target: LiveTarget,
        live_nodes: Callable[[], Awaitable[set[str]]],
        *,
        node_id: str,
        incarnation: str,
        prune_s: float,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        self._client = client
        self._keys = keys
        self._target = target
        self._live_nodes = live_nodes
        self.node_id = node_id
        self.incarnation = incarnation
        self._prune_s = prune_s
        self.queue = EventQueue(limit)
        self.published = 0
        self.failures = 0
        self.received = 0
        self.subscriber = EventSubscriber(
            sub_client, keys, [TOPIC], self._on_event, self._on_resync
        )

    def offer(self, body: dict[str, Any]) -> None:
        """Queue one of this node's changes (never waits)."""
        self.queue.offer(body)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._publish_loop(), name="cluster-live-publish"),
            asyncio.create_task(self.subscriber.run(), name="cluster-live-subscribe"),
            asyncio.create_task(self._prune_loop(), name="cluster-live-prune"),
        ]

    # ------------------------------------------------------------------ out
    async def _publish_loop(self) -> None:
        while True:
            body = await self.queue.take()
            try:
                await publish(
                    self._client, self._keys, TOPIC, encode(self.node_id, self.incarnation, body)
                )
                self.published += 1
            except ClusterUnavailable as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                self.failures += 1

    # ------------------------------------------------------------------ in
    async def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        incoming = decode(event, self.node_id)
        if incoming is None:
            return
        self.received += 1
        if incoming.kind == "sync":
            self.offer({"kind": "state", "channels": self._target.local_state()})
        else:
            self._target.on_remote(incoming.origin, incoming.incarnation, incoming.body)

    async def _on_resync(self) -> None:
        self._target.clear_remote()
        self.offer({"kind": "sync"})
        self.offer({"kind": "state", "channels": self._target.local_state()})

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self._prune_s)
            try:
                live = await self._live_nodes()
            except ClusterUnavailable as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                continue
            self._target.retain_remote(live)

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        s = self.subscriber
        return [
            Family("voice_cluster_events_published_total", "counter",
                   "Live-view events this node published to Redis").add(self.published),
            Family("voice_cluster_events_dropped_total", "counter",
                   "Live-view events dropped before publishing (queue full)")
            .add(self.queue.dropped),
            Family("voice_cluster_events_publish_failures_total", "counter",
                   "Live-view events lost because publishing failed (Redis away)")
            .add(self.failures),
            Family("voice_cluster_events_received_total", "counter",
                   "Live-view events received from other nodes").add(self.received),
            Family("voice_cluster_events_resyncs_total", "counter",
                   "Event subscriptions (re)established, each followed by a resync")
            .add(s.resyncs),
        ]  # fmt: skip
