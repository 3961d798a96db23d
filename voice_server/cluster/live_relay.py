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

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from voice_server.cluster.keys import Keys
from voice_server.cluster.live_events import TOPIC, decode
from voice_server.cluster.topic import Incoming, TopicLink
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


class LiveRelay(TopicLink):
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
        super().__init__(
            client, sub_client, keys, TOPIC, live_nodes,
            node_id=node_id, incarnation=incarnation, prune_s=prune_s, limit=limit,
        )  # fmt: skip
        self._target = target
        self.received = 0

    # ------------------------------------------------------------------ in
    def decode(self, event: dict[str, Any]) -> Incoming | None:
        return decode(event, self.node_id)

    async def on_event(self, incoming: Incoming) -> None:
        self.received += 1
        if incoming.kind == "sync":
            self.offer({"kind": "state", "channels": self._target.local_state()})
        else:
            self._target.on_remote(incoming.origin, incoming.incarnation, incoming.body)

    async def on_resync(self) -> None:
        self._target.clear_remote()
        self.offer({"kind": "sync"})
        self.offer({"kind": "state", "channels": self._target.local_state()})

    def retain(self, live: set[str]) -> None:
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
