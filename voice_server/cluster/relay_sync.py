"""Keeps a node's media relay in step with the cluster (README "Channels across nodes").

The media relay (:class:`voice_server.media.relay.WorkerRelay`, the same one that joins the
media workers of one machine) needs three things it cannot know by itself; each heartbeat this
node reads them from Redis and hands them over (media never waits for it):

- its **peers**: every live node's relay index, incarnation and address, from the node reports
  (a node that stopped reporting is sent nothing and its datagrams are refused);
- each channel's **owner** with its epoch (the fenced lease of :mod:`.ownership`, as
  :class:`~.membership.NodeMembership` follows it): a local talker's packets go to the owner's
  relay, and only the owner's router arbitrates the channel; a channel this node owns is
  arbitrated here;
- for each channel it owns, the **nodes with sessions** in it (the channel → nodes map): the
  owner's forwarded packets go once to each of them.

Pure helpers (:func:`relay_text`, :func:`parse_relay`, :func:`plan_listening`) are apart from the
loop, which is :class:`RelaySync`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from voice_server.cluster.client import ClusterUnavailable, cancelled_meanwhile
from voice_server.cluster.membership import NodeMembership
from voice_server.cluster.nodes import NodeInfo
from voice_server.cluster.ownership import Owner

__all__ = ["RelayPeer", "RelayPort", "RelaySync", "parse_relay", "plan_listening", "relay_text"]

log = logging.getLogger(__name__)
MAX_INDEX = 255


class _Targets(Protocol):
    def set_listening(self, worker: int, channels: Iterable[str]) -> bool: ...


class RelayPort(Protocol):
    """What of the media relay this loop drives."""

    index: int
    peers: dict[int, int]
    addresses: dict[int, tuple[str, int]]
    owners: dict[str, int]

    @property
    def targets(self) -> _Targets: ...

    def set_owner(self, channel: str, owner: int | None, epoch: int) -> None: ...

    def sweep(self) -> None: ...

    def ping(self, targets: tuple[int, ...], redis_up: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class RelayPeer:
    index: int
    incarnation: int
    host: str
    port: int


def relay_text(index: int, incarnation: int, host: str, port: int) -> str:
    """A node report's ``relay`` field."""
    return f"{index} {incarnation} {host} {port}"


def parse_relay(text: str) -> RelayPeer | None:
    """A report's ``relay`` field; None when absent or malformed (that node is sent nothing)."""
    parts = text.split()
    if len(parts) != 4:
        return None
    try:
        index, incarnation, port = int(parts[0]), int(parts[1]), int(parts[3])
        ipaddress.ip_address(parts[2])
    except ValueError:
        return None
    if not 0 <= index <= MAX_INDEX or not 0 <= incarnation < 1 << 32 or not 0 < port < 65536:
        return None
    return RelayPeer(index, incarnation, parts[2], port)


def plan_listening(
    counts_by_channel: Mapping[str, Mapping[str, int]], index_of: Mapping[str, int]
) -> dict[int, frozenset[str]]:
    """relay index -> the channels (owned here) it has sessions of, from the channel → nodes
    map; nodes without a known relay are left out."""
    out: dict[int, set[str]] = {}
    for channel, counts in counts_by_channel.items():
        for node_id, count in counts.items():
            index = index_of.get(node_id)
            if index is not None and count > 0:
                out.setdefault(index, set()).add(channel)
    return {i: frozenset(cs) for i, cs in out.items()}


class RelaySync:
    def __init__(
        self,
        membership: NodeMembership,
        relay: RelayPort,
        period_s: float,
        grace_s: float = 0.0,
    ) -> None:
        self.membership = membership
        self.relay = relay
        self.period_s = period_s
        self.grace_s = grace_s  # how long a node missing from the reports is still a peer
        self._seen_at: dict[str, float] = {}  # node id -> when its report was last read
        #: (relay index, channel owned here) -> when the channel map last showed it
        self._planned_at: dict[tuple[int, str], float] = {}
        #: node id -> (its incarnation, its relay) as last read
        self.nodes: dict[str, tuple[str, RelayPeer]] = {}
        self.failures = 0
        self.unknown_owner = 0  # channels whose owner's node has no live relay (yet)
        #: relay index -> the channels owned here it has sessions of (as last read)
        self.planned: dict[int, frozenset[str]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Read again now (another node's first session of a channel owned here)."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.step()
            except ClusterUnavailable as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                self.failures += 1
            except Exception:
                log.exception("relay sync failed")
                self.failures += 1
            self.relay.sweep()
            try:
                await asyncio.wait_for(self._wake.wait(), self.period_s)
            except TimeoutError:
                pass

    async def ping_loop(self) -> None:
        """Every peer hears from this node each period, whatever Redis does (a round of
        :meth:`run` may wait a second on a Redis that does not answer)."""
        while True:
            peers = tuple(sorted(p.index for _, p in self.nodes.values()))
            self.relay.ping(peers, self.membership.link.up)
            await asyncio.sleep(self.period_s)

    async def step(self) -> None:
        m = self.membership
        self.set_nodes(await m.live_nodes())
        for owner in list(m.owners.values()):
            self.apply_owner(owner)
        for channel in [c for c in self.relay.owners if c not in m.owners]:
            del self.relay.owners[channel]  # no session here any more (the fence stays)
        index_of = {node_id: peer.index for node_id, (_, peer) in self.nodes.items()}
        index_of[m.node_id] = self.relay.index
        counts = await m.map.nodes_of(sorted(m.owned))
        self.set_listening(self._kept(plan_listening(counts, index_of), set(m.owned)))

    def _kept(
        self, plan: dict[int, frozenset[str]], owned: set[str], now: float | None = None
    ) -> dict[int, frozenset[str]]:
        """``plan`` plus what the last ``grace_s`` planned for channels still owned here and
        peers still known: a node's entry missing from the channel map for a moment (Redis
        lost it and the node writes it back at its next round) costs no audio; one gone for
        good stops getting it after ``grace_s`` (a few seconds of datagrams nobody hears)."""
        now = time.monotonic() if now is None else now
        peers = {p.index for _, p in self.nodes.values()}
        for index, channels in plan.items():
            for channel in channels:
                self._planned_at[(index, channel)] = now
        out = {i: set(cs) for i, cs in plan.items()}
        for (index, channel), at in list(self._planned_at.items()):
            if now - at >= self.grace_s or channel not in owned or index not in peers:
                del self._planned_at[(index, channel)]
            else:
                out.setdefault(index, set()).add(channel)
        return {i: frozenset(cs) for i, cs in out.items()}

    def set_nodes(self, nodes: list[NodeInfo], now: float | None = None) -> None:
        """The live nodes' relays as Redis reports them. A node missing from the reports is
        kept for ``grace_s`` more (after a Redis outage every report expired at once, and each
        node writes its own back only at its next heartbeat: dropping them at once would refuse
        their audio meanwhile); a new incarnation of a node, or another node on its index,
        replaces it at once."""
        now = time.monotonic() if now is None else now
        me = self.membership.node_id
        seen: dict[str, tuple[str, RelayPeer]] = {}
        for node in nodes:
            peer = parse_relay(node.relay)
            if peer is not None and node.node_id != me and peer.index != self.relay.index:
                seen[node.node_id] = (node.incarnation, peer)
                self._seen_at[node.node_id] = now
        taken = {p.index for _, p in seen.values()}
        for node_id, (inc, peer) in self.nodes.items():
            if node_id in seen or peer.index in taken:
                continue
            if now - self._seen_at.get(node_id, now) < self.grace_s:
                seen[node_id] = (inc, peer)
                taken.add(peer.index)
        for node_id in [n for n in self._seen_at if n not in seen]:
            del self._seen_at[node_id]
        self.nodes = seen
        relay = self.relay
        relay.peers.clear()
        relay.peers.update({p.index: p.incarnation for _, p in seen.values()})
        relay.addresses = {p.index: (p.host, p.port) for _, p in seen.values()}

    def apply_owner(self, owner: Owner) -> None:
        """``owner``'s word for its channel, to the relay (at once after a join's admission)."""
        m = self.membership
        if owner.is_node(m.node_id, m.incarnation):
            self.relay.set_owner(owner.channel, None, owner.epoch)
            return
        known = self.nodes.get(owner.node_id)
        if known is None or known[0] != owner.incarnation:
            self.unknown_owner += 1  # dead or not reported yet: its lease will tell
            return
        self.relay.set_owner(owner.channel, known[1].index, owner.epoch)

    def listen(self, node_id: str, channel: str) -> None:
        """Another node said it has its first member of ``channel`` (owned here): send it the
        channel's audio at once; the next round's read of the map confirms it (or drops it)."""
        known = self.nodes.get(node_id)
        if known is None:
            self.wake()  # a node not read yet: read everything now
            return
        index = known[1].index
        self._planned_at[(index, channel)] = time.monotonic()  # kept until the map shows it
        plan = dict(self.planned)
        plan[index] = plan.get(index, frozenset()) | {channel}
        self.set_listening(plan)

    def set_listening(self, plan: dict[int, frozenset[str]]) -> None:
        for index in set(self.planned) | set(plan):
            self.relay.targets.set_listening(index, plan.get(index, frozenset()))
        self.planned = plan
