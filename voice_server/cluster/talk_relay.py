"""Talk events of channels that span nodes, through the deployment's ``talk`` topic (README
"Channels across nodes"; the events are :mod:`.talk_events`).

- Out: the hub's :class:`~voice_server.signaling.remote_talk.TalkOut` side (:meth:`hear`,
  :meth:`to`) and this node's sessions (:meth:`who`, :meth:`gone`) only queue (bounded, the
  oldest dropped and counted); one task publishes. A failed publish is counted and lost.
- In: another node's ``hear`` goes to the hearers here, ``to`` to the session here it names,
  ``who``/``gone``/``state`` keep the hub's picture of the other nodes' sessions (the owner of a
  channel names a talker from elsewhere by it), ``listen`` wakes the relay's sync. At every
  (re)subscription this node asks everyone for their ``state`` (each answer replaces what was
  known of that node); every heartbeat the people of nodes without a live report are forgotten.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from voice_server.cluster.keys import Keys
from voice_server.cluster.talk_events import KINDS, TOPIC, decode
from voice_server.cluster.topic import Incoming, TopicLink
from voice_server.metrics import Family, counter_family

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["TalkRelay", "TalkTarget"]

log = logging.getLogger(__name__)
QUEUE_LIMIT = 4096


class TalkTarget(Protocol):
    """The hub, as this relay sees it."""

    remote: Any  # signaling.remote_talk.RemotePeople

    def hear_remote(
        self, channel: str, data: object, only: frozenset[str] | None, exclude: str | None
    ) -> bool: ...

    def to_remote(self, session_id: str, data: object) -> bool: ...


class TalkRelay(TopicLink):
    def __init__(
        self,
        client: Redis,
        sub_client: Redis,
        keys: Keys,
        target: TalkTarget,
        local_people: Callable[[], list[dict[str, Any]]],
        live_nodes: Callable[[], Awaitable[set[str]]],
        *,
        node_id: str,
        incarnation: str,
        prune_s: float,
        on_listen: Callable[[str, str], None] = lambda node, channel: None,
        limit: int = QUEUE_LIMIT,
    ) -> None:
        super().__init__(
            client, sub_client, keys, TOPIC, live_nodes,
            node_id=node_id, incarnation=incarnation, prune_s=prune_s, limit=limit,
        )  # fmt: skip
        self._target = target
        self._local_people = local_people
        self._on_listen = on_listen
        self.received: dict[str, int] = {}
        self.undelivered = 0  # hear / to messages that were no talk message, or no session here

    # ------------------------------------------------------------------ the hub's side
    def hear(
        self, channel: str, message: Any, only: frozenset[str] | None, exclude: str | None
    ) -> None:
        self.offer(
            {
                "kind": "hear",
                "channel": channel,
                "message": message.model_dump(mode="json"),
                "only": sorted(only) if only is not None else None,
                "exclude": exclude,
            }
        )

    def to(self, session_id: str, message: Any) -> None:
        self.offer(
            {"kind": "to", "session": session_id, "message": message.model_dump(mode="json")}
        )

    def who(self, person: dict[str, Any], first_of_channel: bool) -> None:
        self.offer({"kind": "who", "people": [person]})
        if first_of_channel:
            self.offer({"kind": "listen", "channel": person["channel"]})

    def gone(self, session_id: str) -> None:
        self.offer({"kind": "gone", "sessions": [session_id]})

    # ------------------------------------------------------------------ in
    def decode(self, event: dict[str, Any]) -> Incoming | None:
        return decode(event, self.node_id)

    async def on_event(self, incoming: Incoming) -> None:
        kind, body = incoming.kind, incoming.body
        self.received[kind] = self.received.get(kind, 0) + 1
        target = self._target
        if kind == "hear":
            only = body.get("only")
            exclude = body.get("exclude")
            if not target.hear_remote(
                body["channel"],
                body["message"],
                frozenset(only) if only is not None else None,
                exclude if isinstance(exclude, str) else None,
            ):
                self.undelivered += 1
        elif kind == "to":
            if not target.to_remote(body["session"], body["message"]):
                self.undelivered += 1
        elif kind == "who":
            target.remote.add(incoming.origin, body["people"])
        elif kind == "state":
            target.remote.replace(incoming.origin, body["people"])
        elif kind == "gone":
            target.remote.gone(incoming.origin, body["sessions"])
        elif kind == "listen":
            self._on_listen(incoming.origin, body["channel"])
        elif kind == "sync":
            self.offer({"kind": "state", "people": self._local_people()})

    async def on_resync(self) -> None:
        # what was known of the others stays (no phone's people list flickers after a Redis
        # blip): each node's ``state`` answer replaces its part, the prune drops the dead
        self.offer({"kind": "sync"})
        self.offer({"kind": "state", "people": self._local_people()})

    def retain(self, live: set[str]) -> None:
        self._target.remote.retain_nodes(live.__contains__)

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        received = {kind: self.received.get(kind, 0) for kind in sorted(KINDS)}
        return [
            Family("voice_cluster_talk_published_total", "counter",
                   "Talk events (and session lists) this node published for other nodes")
            .add(self.published),
            Family("voice_cluster_talk_dropped_total", "counter",
                   "Talk events dropped before publishing (queue full)").add(self.queue.dropped),
            Family("voice_cluster_talk_publish_failures_total", "counter",
                   "Talk events lost because publishing failed (Redis away)").add(self.failures),
            counter_family("voice_cluster_talk_received_total",
                           "Talk events received from other nodes, by kind", received, "kind"),
            Family("voice_cluster_talk_undelivered_total", "counter",
                   "Talk events from other nodes that had no session or hearer here")
            .add(self.undelivered),
            Family("voice_cluster_remote_sessions", "gauge",
                   "Other nodes' sessions known here").add(len(self._target.remote)),
        ]  # fmt: skip
