"""One node's link to a cross-node event topic (README "Live view across nodes", "Channels
across nodes"): the envelope every event wears, and the loops every topic needs.

- The envelope (pure): ``{"v": 1, "origin": <node id>, "inc": <incarnation>, "kind": …}`` and
  the kind's fields; :func:`envelope` returns None for our own events and for anything that is
  not one (skipped, never raised: one bad publisher cannot stop a subscriber).
- :class:`TopicLink`: what this node offers only queues (:class:`EventQueue`: bounded, the oldest
  dropped and counted) and one task publishes (a failed publish is counted and lost); an
  :class:`EventSubscriber` hands the other nodes' events to :meth:`TopicLink.on_event` and calls
  :meth:`TopicLink.on_resync` at every (re)subscription; every ``prune_s``,
  :meth:`TopicLink.retain` gets the nodes with a live report. Subclasses say what each does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voice_server.cluster.client import ClusterUnavailable, cancelled_meanwhile
from voice_server.cluster.event_queue import EventQueue
from voice_server.cluster.events import EventSubscriber, publish
from voice_server.cluster.keys import Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["VERSION", "Incoming", "TopicLink", "encode", "envelope"]

VERSION = 1


@dataclass(frozen=True, slots=True)
class Incoming:
    origin: str
    incarnation: str
    body: dict[str, Any]  # the kind and its fields

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


def encode(origin: str, incarnation: str, body: dict[str, Any]) -> dict[str, Any]:
    """The published form of ``body`` (``{"kind": …, …}``) from this node."""
    return {"v": VERSION, "origin": origin, "inc": incarnation, **body}


def envelope(event: dict[str, Any], self_id: str, kinds: Collection[str]) -> Incoming | None:
    """Another node's event of one of ``kinds``, its fields not checked yet; None for ours or
    one without a proper envelope."""
    origin, inc, kind = event.get("origin"), event.get("inc"), event.get("kind")
    if event.get("v") != VERSION or not isinstance(origin, str) or not origin:
        return None
    if origin == self_id or not isinstance(inc, str) or kind not in kinds:
        return None
    return Incoming(
        origin, inc, {k: v for k, v in event.items() if k not in ("v", "origin", "inc")}
    )


class TopicLink:
    def __init__(
        self,
        client: Redis,
        sub_client: Redis,
        keys: Keys,
        topic: str,
        live_nodes: Callable[[], Awaitable[set[str]]],
        *,
        node_id: str,
        incarnation: str,
        prune_s: float,
        limit: int,
    ) -> None:
        self._client = client
        self._keys = keys
        self.topic = topic
        self._live_nodes = live_nodes
        self.node_id = node_id
        self.incarnation = incarnation
        self._prune_s = prune_s
        self.queue = EventQueue(limit)
        self.published = 0
        self.failures = 0
        self.subscriber = EventSubscriber(sub_client, keys, [topic], self._on_event, self.on_resync)

    def offer(self, body: dict[str, Any]) -> None:
        """Queue one of this node's events (never waits)."""
        self.queue.offer(body)

    def tasks(self) -> list[asyncio.Task[None]]:
        name = f"cluster-{self.topic}"
        return [
            asyncio.create_task(self._publish_loop(), name=f"{name}-publish"),
            asyncio.create_task(self.subscriber.run(), name=f"{name}-subscribe"),
            asyncio.create_task(self._prune_loop(), name=f"{name}-prune"),
        ]

    # ------------------------------------------------------------------ what a topic does
    def decode(self, event: dict[str, Any]) -> Incoming | None:
        """Another node's event of this topic, checked (None: ours, or malformed)."""
        raise NotImplementedError

    async def on_event(self, incoming: Incoming) -> None:
        raise NotImplementedError

    async def on_resync(self) -> None:
        """Subscribed (again): what may have been missed is asked for."""

    def retain(self, live: set[str]) -> None:
        """Only these nodes have a live report: forget what came from the others."""

    # ------------------------------------------------------------------ loops
    async def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        incoming = self.decode(event)
        if incoming is not None:
            await self.on_event(incoming)

    async def _publish_loop(self) -> None:
        while True:
            body = await self.queue.take()
            try:
                await publish(
                    self._client,
                    self._keys,
                    self.topic,
                    encode(self.node_id, self.incarnation, body),
                )
                self.published += 1
            except ClusterUnavailable as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                self.failures += 1

    async def _prune_loop(self) -> None:
        while True:
            await asyncio.sleep(self._prune_s)
            try:
                live = await self._live_nodes()
            except ClusterUnavailable as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                continue
            self.retain(live)
