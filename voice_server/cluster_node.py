"""This server as one node of a cluster (``serve --node-id ID --redis-url URL``; README "Cluster").

:class:`ClusterNode` joins the signaling hub to the cluster layer (:mod:`voice_server.cluster`):
it is the hub's :class:`~voice_server.signaling.admission.ClusterPort` (a new session is admitted
through the fenced channel ownership, or refused at once with ``cluster_unavailable`` while Redis
is away, or ``node_draining``), it runs the node's membership loop (heartbeat with load and
state, leases, channel entries, session presence) and reads the node's inbox, where
``voice-server drain`` asks it to drain: it refuses new joins from then on, sends every connected
client ``migrate`` (with another live node's base URL when one takes joins) and closes what is
left at the deadline. With the dashboard's live view (``live``) it also runs the
:class:`~voice_server.cluster.live_relay.LiveRelay`: the live view across nodes. Media never
waits on any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from voice_server.cluster.client import ClusterUnavailable, open_client
from voice_server.cluster.drain import DRAIN, migrate_targets
from voice_server.cluster.health import RedisHealth, State
from voice_server.cluster.inbox import InboxReader
from voice_server.cluster.keys import Keys
from voice_server.cluster.live_relay import LiveRelay
from voice_server.cluster.membership import NodeMembership
from voice_server.cluster.messages import InboxMessage
from voice_server.cluster.relay_index import relay_index
from voice_server.cluster.relay_sync import RelaySync, relay_text
from voice_server.cluster.talk_relay import TalkRelay
from voice_server.cluster.timing import Timing
from voice_server.config import Config
from voice_server.identity.derived import derive_key
from voice_server.media.plane import MediaPlane
from voice_server.media.relay import WorkerRelay
from voice_server.metrics import Family, counter_family
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.hub import Hub, participant
from voice_server.signaling.livehub import LiveHub

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ClusterNode"]

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 1.0  # a node's Redis calls: a hung Redis is noticed within a second
LEAVE_TIMEOUT_S = 3.0
RELAY_PURPOSE = "cluster-media-relay"  # the relay datagrams' key, derived from the deployment's
SEAL_PURPOSE = "cluster-media-relay-aead"  # their encryption's master key (cluster_relay_encrypt)
STOP_TIMEOUT_S = 5.0


class ClusterNode:
    def __init__(
        self,
        config: Config,
        hub: Hub,
        incarnation: str,
        live: LiveHub | None = None,
        *,
        plane: MediaPlane | None = None,
        key: bytes | None = None,
    ) -> None:
        assert config.redis_url is not None and config.node_id is not None
        self.url = config.redis_url
        self.node_id = config.node_id
        self.incarnation = incarnation
        self.base_url = config.base_url
        self.keys = Keys(config.cluster_prefix)
        self.timing = Timing.derived(
            config.cluster_heartbeat_seconds, config.cluster_node_ttl_seconds
        )
        self.hub = hub
        self.draining = False
        self.refused: Counter[str] = Counter(
            {ErrorCode.CLUSTER_UNAVAILABLE.value: 0, ErrorCode.NODE_DRAINING.value: 0}
        )
        self.migrate_sent = 0
        self.drained_closed = 0
        self.membership: NodeMembership | None = None
        self.live = live
        self.relay: LiveRelay | None = None
        self.config = config
        self.plane = plane
        self._relay_key = derive_key(key, RELAY_PURPOSE) if key is not None else None
        self._seal_key = (
            derive_key(key, SEAL_PURPOSE)
            if key is not None and config.cluster_relay_encrypt
            else None
        )
        #: the media relay between nodes, its sync with Redis, and the talk events' topic
        self.media_relay: WorkerRelay | None = None
        self.relay_sync: RelaySync | None = None
        self.talk: TalkRelay | None = None
        self.degraded_sent = 0  # sessions told ``degraded`` (a partition)
        self._health: RedisHealth | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Redis] = []

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        client = open_client(self.url, command_timeout_s=COMMAND_TIMEOUT_S)
        reader_client = open_client(self.url, command_timeout_s=COMMAND_TIMEOUT_S, retries=0)
        events_client = open_client(self.url, command_timeout_s=COMMAND_TIMEOUT_S, retries=0)
        talk_client = open_client(self.url, command_timeout_s=COMMAND_TIMEOUT_S, retries=0)
        self._closers = [client, reader_client, events_client, talk_client]
        self.membership = NodeMembership(
            client,
            self.keys,
            self.timing,
            node_id=self.node_id,
            incarnation=self.incarnation,
            base_url=self.base_url,
        )
        self._health = RedisHealth(client)
        if self.plane is not None and self._relay_key is not None:
            await self._open_relay(client)
        await self.membership.step()  # the first report now: joins are admitted from here
        reader = InboxReader(reader_client, self.keys, self.node_id, self._on_message)
        self._tasks = [
            asyncio.create_task(self.membership.run(), name="cluster-membership"),
            asyncio.create_task(reader.run(), name="cluster-inbox"),
        ]
        if self.live is not None:
            self.relay = LiveRelay(
                client,
                events_client,
                self.keys,
                self.live,
                self._live_ids,
                node_id=self.node_id,
                incarnation=self.incarnation,
                prune_s=self.timing.heartbeat_s,
            )
            self.live.node_id = self.node_id
            self.live.publish = self.relay.offer
            self._tasks += self.relay.tasks()
        if self.relay_sync is not None:
            self.talk = TalkRelay(
                client,
                talk_client,
                self.keys,
                self.hub,
                self._local_people,
                self._live_ids,
                node_id=self.node_id,
                incarnation=self.incarnation,
                prune_s=self.timing.heartbeat_s,
                on_listen=self._listen,
            )
            self.hub.talk_out = self.talk
            self._tasks += self.talk.tasks()
            self._tasks.append(asyncio.create_task(self.relay_sync.run(), name="cluster-relay"))
            self._tasks.append(
                asyncio.create_task(self.relay_sync.ping_loop(), name="cluster-relay-ping")
            )
            self._tasks.append(asyncio.create_task(self._partition_loop(), name="cluster-cut"))
        self.hub.cluster = self
        log.info("cluster node=%s joined (redis %s)", self.node_id, self.membership.link.state)

    async def _open_relay(self, client: Redis) -> None:
        """The media relay to the other nodes: its index from Redis, its socket bound, and the
        plane's channels routed through it (before this node takes its first join)."""
        assert self.plane is not None and self._relay_key is not None
        assert self.membership is not None
        index = await relay_index(client, self.keys, self.node_id)
        relay = WorkerRelay(
            index=index,
            incarnation=secrets.randbits(32),
            key=self._relay_key,
            plane=self.plane,
            host=self.config.cluster_relay_host,
            slots=self.config.slots,
            seal_key=self._seal_key,
        )
        port = relay.open(self.config.cluster_relay_port)
        self.plane.relay = relay
        self.plane.slot_ssrcs_of = relay.slot_ssrcs
        self.media_relay = relay
        self.membership.relay = relay_text(index, relay.incarnation, relay.host, port)
        self.relay_sync = RelaySync(
            self.membership, relay, self.timing.heartbeat_s, grace_s=self.timing.node_ttl_s
        )
        log.info(
            "cluster relay node=%s index=%d on %s:%d (%s)",
            self.node_id, index, relay.host, port,
            "encrypted" if self._seal_key is not None else "authenticated",
        )  # fmt: skip

    async def _partition_loop(self) -> None:
        """Cut off from Redis longer than an owner lease, this node can no longer keep a
        channel that spans nodes whole: the nodes that reach Redis have re-owned it (or will);
        its sessions in such channels are told ``degraded`` (once) and join again elsewhere.
        Channels whose members are all here go on. When every peer it still hears has lost
        Redis too, it is a Redis outage: nobody re-owns anything, calls go on untold."""
        m = self.membership
        assert m is not None
        while True:
            await asyncio.sleep(self.timing.heartbeat_s)
            link = m.link
            if link.up:
                self.hub.degraded.clear()
                continue
            since = link.changed_at
            if since is None or time.monotonic() - since < self.timing.lease_s:
                continue
            if self._redis_down_everywhere():
                continue  # a Redis outage, not a partition: nobody takes the channels
            spanning = self.spanning_channels()
            if spanning:
                self.degraded_sent += self.hub.degrade(spanning)

    def _redis_down_everywhere(self) -> bool:
        """The peers this node still hears over the relay (a ping each round) all say they
        have lost Redis too: a Redis outage, not a partition. None heard (this node is cut
        off from them too), or one that reaches Redis (it and its side take the channels):
        a partition."""
        relay = self.media_relay
        if relay is None:
            return False
        now = time.monotonic()
        recent = [up for at, up in relay.heard.values() if now - at < self.timing.node_ttl_s]
        return bool(recent) and not any(recent)

    def spanning_channels(self) -> set[str]:
        """The channels of sessions here that, as last known, span nodes: owned elsewhere, or
        owned here with members on another node."""
        m = self.membership
        if m is None:
            return set()
        me = self.media_relay.index if self.media_relay is not None else -1
        planned = self.relay_sync.planned if self.relay_sync is not None else {}
        out = set()
        for channel, owner in m.owners.items():
            if not owner.is_node(self.node_id, self.incarnation):
                out.add(channel)
            elif any(channel in chans for index, chans in planned.items() if index != me):
                out.add(channel)
        return out

    def _listen(self, node_id: str, channel: str) -> None:
        """Node ``node_id`` has its first member of ``channel``: when this node owns it, that
        node gets its audio from now on (before its channel entry is even written)."""
        m = self.membership
        if self.relay_sync is not None and m is not None and channel in m.owned:
            self.relay_sync.listen(node_id, channel)

    def _local_people(self) -> list[dict[str, Any]]:
        return [_person(s) for s in self.hub.registry]

    async def stop(self) -> None:
        self.hub.cluster = None
        self.hub.talk_out = None
        if self.live is not None:
            self.live.publish = None
        for task in self._tasks:
            task.cancel()
        if self._tasks:  # bounded: a stop never hangs on a Redis call left behind
            done, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            for task in stuck:
                log.warning("cluster task %s did not stop in time", task.get_name())
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("cluster task %s had failed: %r", task.get_name(), task.exception())
        self._tasks = []
        if self.membership is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.membership.leave(), LEAVE_TIMEOUT_S)
        if self._health is not None:
            await self._health.close()
        for client in self._closers:
            with contextlib.suppress(Exception):
                await client.aclose()
        if self.media_relay is not None and self.plane is not None:
            self.plane.relay = None
            self.media_relay.close()

    async def _live_ids(self) -> set[str]:
        assert self.membership is not None
        return {node.node_id for node in await self.membership.live_nodes()}

    # ------------------------------------------------------------------ the hub's port
    async def admit(self, channel: str) -> None:
        self._refuse_if_draining()
        assert self.membership is not None
        try:
            owner = await self.membership.admit(channel)
        except ClusterUnavailable:
            self.refused[ErrorCode.CLUSTER_UNAVAILABLE.value] += 1
            raise ProtocolError(
                ErrorCode.CLUSTER_UNAVAILABLE,
                "the cluster is unavailable (its Redis cannot be reached); try again shortly",
            ) from None
        self._refuse_if_draining()  # a drain that began while Redis answered
        if self.relay_sync is not None:
            self.relay_sync.apply_owner(owner)  # the relay knows the owner before media starts

    def _refuse_if_draining(self) -> None:
        if self.draining:
            self.refused[ErrorCode.NODE_DRAINING.value] += 1
            raise ProtocolError(
                ErrorCode.NODE_DRAINING, "this node is being drained: join another node"
            )

    def joined(self, session_id: str, channel: str) -> None:
        if self.membership is not None:
            self.membership.joined(session_id, channel)
        session = self.hub.registry.get(session_id)
        if self.talk is not None and self.membership is not None and session is not None:
            first = self.membership.map.refs.count(channel) == 1
            self.talk.who(_person(session), first)

    def routed(self, session_id: str, channels: frozenset[str]) -> None:
        m = self.membership
        if m is None:
            return
        before = {c for c, _ in m.map.refs.items()}
        m.routed(session_id, channels)
        if self.talk is not None:
            for channel in sorted({c for c, _ in m.map.refs.items()} - before):
                self.talk.offer({"kind": "listen", "channel": channel})

    def ended(self, session_id: str) -> None:
        if self.membership is not None:
            self.membership.ended(session_id)
        if self.talk is not None:
            self.talk.gone(session_id)

    # ------------------------------------------------------------------ health
    async def redis_check(self) -> State:
        """``/readyz``'s ``checks.redis`` (bounded: a hung Redis answers "down" in 0.5 s)."""
        return "down" if self._health is None else await self._health.check()

    # ------------------------------------------------------------------ drain
    async def _on_message(self, message: InboxMessage) -> None:
        if message.kind != DRAIN:
            log.warning("cluster inbox: unknown kind %r from %s", message.kind, message.sender)
            return
        if message.body.get("incarnation") not in (None, self.incarnation):
            return  # meant for an earlier process under this node id
        try:
            deadline_s = max(0.0, float(message.body.get("deadline_s", 30.0)))
        except (TypeError, ValueError):
            log.warning("cluster inbox: drain with a bad deadline from %s", message.sender)
            return
        await self.drain(deadline_s)

    async def drain(self, deadline_s: float) -> None:
        """Stop taking joins, ask the clients to move, close what is left at the deadline."""
        if self.draining:
            return
        assert self.membership is not None
        self.draining = True
        self.membership.set_state("draining")
        try:
            nodes = await self.membership.live_nodes()
        except ClusterUnavailable:
            nodes = []
        targets = migrate_targets(nodes, self.node_id)
        self.migrate_sent += self.hub.migrate(targets, deadline_s)
        log.info(
            "cluster drain node=%s deadline_s=%g asked=%d targets=%s",
            self.node_id, deadline_s, self.migrate_sent, targets,
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self._close_at(deadline_s), name="cluster-drain"))

    async def _close_at(self, deadline_s: float) -> None:
        await asyncio.sleep(deadline_s)
        self.drained_closed += self.hub.close_all("drained", "node drained")
        log.info("cluster drain node=%s over: %d closed", self.node_id, self.drained_closed)

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        m = self.membership
        link = m.link if m is not None else None
        return [
            Family("voice_cluster_redis_up", "gauge", "This node's link to Redis works (1) or not")
            .add(1 if link is not None and link.up else 0),
            Family("voice_cluster_redis_link_downs_total", "counter",
                   "Times this node's link to Redis went down").add(link.downs if link else 0),
            Family("voice_cluster_redis_failures_total", "counter",
                   "This node's Redis calls that failed or timed out")
            .add(link.failures if link else 0),
            counter_family("voice_cluster_joins_refused_total",
                           "Joins refused by the cluster, by error code", self.refused, "code"),
            Family("voice_cluster_draining", "gauge", "This node is being drained (1)")
            .add(1 if self.draining else 0),
            Family("voice_cluster_owned_channels", "gauge",
                   "Channels whose owner lease this node holds")
            .add(len(m.owned) if m is not None else 0),
            Family("voice_cluster_leases_lost_total", "counter",
                   "Owner leases found expired at renewal").add(m.leases_lost if m else 0),
            Family("voice_cluster_presence_dropped_total", "counter",
                   "Ended sessions whose presence record was left to expire (Redis away long)")
            .add(m.gone_dropped if m else 0),
            Family("voice_cluster_migrate_sent_total", "counter",
                   "migrate messages sent to clients by a drain").add(self.migrate_sent),
            Family("voice_cluster_degraded_sent_total", "counter",
                   "degraded messages sent to clients (this node cut off from the cluster)")
            .add(self.degraded_sent),
            *(self.relay.families() if self.relay is not None else ()),
            *(self.talk.families() if self.talk is not None else ()),
            *self._relay_families(),
        ]  # fmt: skip

    def _relay_families(self) -> list[Family]:
        relay, sync = self.media_relay, self.relay_sync
        if relay is None or sync is None:
            return []
        stats = relay.stats()
        hop = stats["added_ms"]
        m = self.membership
        return [
            Family("voice_cluster_relay_sent_total", "counter",
                   "Relay datagrams sent to other nodes, by kind (media: a talker's packets to "
                   "its channel's owner; mirror: an owner's forwarded packets, once per node)")
            .add(stats["sent"]["media"], kind="media").add(stats["sent"]["mirror"], kind="mirror"),
            Family("voice_cluster_relay_received_total", "counter",
                   "Relay datagrams from other nodes accepted").add(stats["received"]),
            counter_family("voice_cluster_relay_refused_total",
                           "Relay datagrams refused, by reason", stats["drops"], "reason"),
            Family("voice_cluster_relay_send_drops_total", "counter",
                   "Relay datagrams that could not be sent").add(stats["send_drops"]),
            Family("voice_cluster_relay_mirror_drops_total", "counter",
                   "Mirrored packets that matched no slot stream here").add(stats["mirror_drops"]),
            Family("voice_cluster_relay_hop_ms", "gauge",
                   "Inter-node hop (send to receipt), p50 and p99 since start")
            .add(hop.get("p50") or 0, quantile="0.5").add(hop.get("p99") or 0, quantile="0.99"),
            relay.added.family("voice_cluster_relay_hop_seconds",
                               "Inter-node hop, the sending node's send time to this node's "
                               "receipt (relay datagrams accepted here)", stride=2),
            Family("voice_cluster_relay_sync_failures_total", "counter",
                   "Relay sync rounds that failed (Redis away)").add(sync.failures),
            Family("voice_cluster_channels_reowned_total", "counter",
                   "Channels claimed here after their owner's lease ended")
            .add(m.reowned if m is not None else 0),
        ]  # fmt: skip


def _person(session: Any) -> dict[str, Any]:
    """A session as the other nodes learn it (``talk`` topic ``who``)."""
    return {**participant(session).model_dump(mode="json"), "channel": session.channel}
