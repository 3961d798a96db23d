"""The relay socket of one media worker (README "Several processes on one machine").

Each worker binds one UDP socket on the loopback address (a Unix datagram socket would queue
only ``net.unix.max_dgram_qlen`` datagrams, 10 by default: a receiver busy for a few
milliseconds would lose voice) with the media socket's buffer sizes; the parent tells every
worker the others' addresses and incarnations. Anyone on the machine can send to it, hence the
tag on every datagram. Every channel has one *owner* (the parent's word,
with an epoch): its router is the channel's one arbiter (talk detection, slots, pre-emption, talk
events, the call-log tap) and the only one that rewrites its slot streams.

* A local talker of a channel owned by another worker: its packets go to the owner only
  (``MEDIA``), where they are a server-side source (:mod:`~voice_server.media.source`) like any
  talker there: tapped there, once, never relayed again.
* What the owner's router forwards goes **once** to each other worker with listeners of the
  channel (``MIRROR``, :class:`~voice_server.media.relay_targets.RelayTargets`), packed and
  authenticated once (:mod:`~voice_server.media.relay_packet`): never once per listener. The
  slot SSRCs are the same on every worker, so the receiving router protects and sends the
  owner's packet as it is to its listeners (:meth:`Router.mirror`).
* A routed talker (a direct talk's listener filter, an all-call's several channels) is the
  same, channel by channel: each send channel's packets go to that channel's owner, where the
  relayed source is a member of the channels it is relayed into there only; the datagrams carry
  its audience (send channels, filter), so that its owners' routers and the workers receiving
  their mirrors give it the audience one process would (never someone it does not address, a
  listener of several of its channels once, through the first it hears).
* Every datagram is checked by the :class:`~voice_server.media.relay_packet.RelayGate` (refusals
  counted); one from an owner older than the epoch known is dropped.

A channel with no owner known (one worker) is arbitrated here, as with one process. A relayed
source with no packet for ``IDLE_SECONDS`` is detached.

Nothing here depends on the socket being local: the same datagrams can go over UDP (#20).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from voice_server.histogram import LatencyHistogram
from voice_server.limits import SO_RCVBUFFORCE, SO_SNDBUFFORCE, size_buffer
from voice_server.media.endpoint import RECV_BUFFER, SEND_BUFFER
from voice_server.media.quiet_gate import QuietGate
from voice_server.media.relay_packet import (
    Kind,
    RelayGate,
    RelayPacket,
    Sealer,
    audience_bytes,
    pack,
    slot_ssrcs,
)
from voice_server.media.relay_targets import RelayTargets
from voice_server.media.route import PLAIN, Route
from voice_server.media.router import PREROLL_LEAD_MS
from voice_server.media.source import ServerSource
from voice_server.talk.arbiter import EpochFence
from voice_server.talk.detector import TalkRules

log = logging.getLogger(__name__)

__all__ = ["IDLE_SECONDS", "WorkerRelay"]

IDLE_SECONDS = 30.0
QUIET_MARGIN_MS = 200  # past the detector's hangover and attack before silence is held back
MAX_AUDIENCES = 256  # routed talkers' packed audiences kept
READ_BATCH = 64
Sink = Callable[[bytes, int], None]
#: a relayed talker's route as its datagrams tell it: send channels, filter, priority, hold
_RouteKey = tuple[tuple[str, ...], frozenset[str] | None, int, bool]
_perf_ns = time.perf_counter_ns


class _Audience:
    """A routed talker's audience as a relay datagram carries it, packed once."""

    __slots__ = ("only", "packed", "sends")

    def __init__(self, route: Route) -> None:
        self.sends = route.sends
        self.only = route.only
        self.packed = audience_bytes(route.sends, route.only)


class WorkerRelay:
    def __init__(
        self,
        *,
        index: int,
        incarnation: int,
        key: bytes,
        plane: Any,
        host: str = "127.0.0.1",
        slots: int = 3,
        seal_key: bytes | None = None,
    ) -> None:
        self.index = index
        self.incarnation = incarnation
        self.slots = slots
        self._key = key
        self.host = host
        #: worker index -> its relay socket's address (the parent's word)
        self.addresses: dict[int, tuple[str, int]] = {}
        self.plane = plane
        self.peers: dict[int, int] = {}  # worker index -> incarnation (the parent's word)
        self.fence = EpochFence()
        self.gate = RelayGate(key, index, self.peers, self.fence.known, seal_key)
        #: the sealed format (between nodes with ``cluster_relay_encrypt``; None: plain)
        self._sealer = Sealer(seal_key, index, incarnation) if seal_key is not None else None
        self.targets = RelayTargets(index)
        #: channel -> its owner's index (absent: no owner known, arbitrated here)
        self.owners: dict[str, int] = {}
        #: relayed talkers here: session id -> (its source, last packet time, its route, the
        #: channels it is relayed into here, what of the datagram made its route)
        self.sources: dict[str, tuple[ServerSource, float, Route, frozenset[str], _RouteKey]] = {}
        #: routed talkers' packed audiences, by route (bounded)
        self._audiences: dict[Route, _Audience] = {}
        self.sent = {"media": 0, "mirror": 0, "ping": 0}  # datagrams sent, by kind
        #: sender index -> (when its last ping came, monotonic; what it said: Redis up)
        self.heard: dict[int, tuple[float, bool]] = {}
        self.packets = 0  # forwarded packets mirrored to at least one worker
        self.mirror_drops = 0  # a mirrored packet that was no slot stream here
        #: local talkers' silence held back from owners elsewhere, and held packets sent as
        #: a voiced run's lead
        self.quiet = {"held": 0, "lead": 0}
        self.send_drops = 0  # a full or missing peer socket
        #: inter-process hop: the sender's send time -> this worker's receipt
        self.added = LatencyHistogram()
        self.sock: socket.socket | None = None

    # ------------------------------------------------------------------ socket
    def open(self, port: int = 0) -> int:
        """Bind the relay socket (``port`` 0: any free one); returns its port."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        size_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, RECV_BUFFER)
        size_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, SEND_BUFFER)
        try:
            sock.bind((self.host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        return int(sock.getsockname()[1])

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None
        for sid in list(self.sources):
            self.plane.detach_source(sid)
        self.sources.clear()

    # ------------------------------------------------------------------ out
    def wrap(self, sinks: Sequence[tuple[str, Sink]], peer: Any, route: Route) -> Sink:
        """The plane's hook for a local talker, given its local members' sinks in send order
        (channel, sink): each packet to each send channel's owner, this worker's router for a
        channel it owns (it arbitrates and mirrors what it forwards), a ``MEDIA`` datagram to
        the owner for one another worker owns. The datagram carries the route's priority and
        hold, which the owner's source takes, and for a routed talker (direct talk, all-call)
        its audience: its send channels and listener filter."""
        owners = self.owners
        me = self.index
        session = peer.session_id
        send = self._send
        priority, hold = route.priority, route.hold
        gate = self._gate()
        admit, lead = gate.admit, gate.lead
        counts = self.quiet

        def remote(owner: int, channel: str, plain: bytes, t0_ns: int, audience: Any) -> None:
            ext = peer.level_ext_id
            now_ms = t0_ns // 1_000_000
            if not admit(plain, ext, hold, now_ms):
                counts["held"] += 1
                return
            for early in lead(now_ms):
                counts["lead"] += 1
                send(Kind.MEDIA, (owner,), channel, session, priority, 0, ext, early, hold,
                     audience)  # fmt: skip
            send(Kind.MEDIA, (owner,), channel, session, priority, 0, ext, plain, hold, audience)

        if len(sinks) == 1 and route.only is None:
            channel, sink = sinks[0]

            def to_owner(plain: bytes, t0_ns: int) -> None:
                owner = owners.get(channel, me)
                if owner == me:
                    sink(plain, t0_ns)
                else:
                    remote(owner, channel, plain, t0_ns, None)

            return to_owner
        audience = _Audience(route)
        each = tuple(sinks)

        def to_owners(plain: bytes, t0_ns: int) -> None:
            # one gate for all its channels: a packet held back is held back from every owner
            # elsewhere, and a voiced one goes to each after the same lead
            routed = [(channel, owners.get(channel, me), sink) for channel, sink in each]
            if any(owner != me for _, owner, _ in routed):
                now_ms = t0_ns // 1_000_000
                ext = peer.level_ext_id
                if admit(plain, ext, hold, now_ms):
                    early = lead(now_ms)
                    counts["lead"] += len(early)
                    for channel, owner, _ in routed:
                        if owner != me:
                            for packet in (*early, plain):
                                send(Kind.MEDIA, (owner,), channel, session, priority, 0, ext,
                                     packet, hold, audience)  # fmt: skip
                else:
                    counts["held"] += 1
            for _, owner, sink in routed:
                if owner == me:
                    sink(plain, t0_ns)

        return to_owners

    def _gate(self) -> QuietGate:
        rules = getattr(self.plane, "rules", None) or TalkRules()
        quiet = rules.hangover_ms + rules.attack_ms + QUIET_MARGIN_MS
        return QuietGate(rules.threshold_dbov, quiet, PREROLL_LEAD_MS, _perf_ns() // 1_000_000)

    def mirror_out(
        self,
        channel: str,
        talker: str,
        slot: int,
        data: bytes,
        t0_ns: int,
        route: Route | None = None,
    ) -> None:
        """What this worker's router forwarded, once to each other worker with listeners
        (``route``: a routed talker's, whose audience the receivers apply; None: everyone
        hearing the channel)."""
        targets = self.targets.targets(channel)
        if targets:
            self.packets += 1
            audience = None if route is None else self._audience_of(route)
            self._send(Kind.MIRROR, targets, channel, talker, 0, slot, 0, data, False, audience)

    def _audience_of(self, route: Route) -> _Audience:
        """The packed audience of a routed talker's route (kept while its route is the same)."""
        cached = self._audiences.get(route)
        if cached is None:
            if len(self._audiences) >= MAX_AUDIENCES:
                self._audiences.clear()
            cached = self._audiences[route] = _Audience(route)
        return cached

    def slot_ssrcs(self, channel: str) -> tuple[int, ...]:
        """The channel's slot SSRCs, the same on every worker (the plane's ``slot_ssrcs_of``)."""
        return slot_ssrcs(self._key, channel, self.slots)

    def _send(
        self,
        kind: Kind,
        targets: tuple[int, ...],
        channel: str,
        session: str,
        priority: int,
        slot: int,
        ext: int,
        payload: bytes,
        hold: bool = False,
        audience: _Audience | None = None,
    ) -> None:
        sock = self.sock
        if sock is None:
            return
        packet = RelayPacket(
            sender=self.index,
            incarnation=self.incarnation,
            epoch=self.fence.known.get(channel, 0),
            channel=channel,
            source=session,
            payload=payload,
            priority=min(priority, 255),
            slot=slot,
            send_ns=_perf_ns(),
            level_ext_id=ext,
            kind=kind,
            hold=hold,
            sends=audience.sends if audience is not None else (),
            only=audience.only if audience is not None else None,
        )
        packed = audience.packed if audience is not None else None
        sealer = self._sealer
        if sealer is None:
            data = pack(packet, self._key, packed)
        else:
            data = sealer.seal(packet, packed)
        name = kind.name.lower()
        for worker in targets:
            try:
                sock.sendto(data, self.addresses[worker])
                self.sent[name] += 1
            except (OSError, KeyError):
                self.send_drops += 1

    def set_owner(self, channel: str, owner: int | None, epoch: int) -> None:
        """The parent's word on who arbitrates ``channel`` (None: nobody, arbitrated locally)."""
        if not self.fence.admit(channel, epoch):
            return
        if owner is None:
            self.owners.pop(channel, None)
        else:
            self.owners[channel] = owner

    # ------------------------------------------------------------------ in
    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(READ_BATCH):
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            packet = self.gate.accept(data)
            if packet is not None:
                self._deliver(packet)

    def ping(self, targets: tuple[int, ...], redis_up: bool) -> None:
        """A keepalive to other nodes, saying whether this node reaches Redis (a node cut off
        from Redis tells a partition from a Redis outage by its peers' word)."""
        self._send(Kind.PING, targets, "-", "-", 0, 1 if redis_up else 0, 0, b"")

    def _deliver(self, packet: RelayPacket) -> None:
        if packet.kind is Kind.PING:
            self.heard[packet.sender] = (time.monotonic(), packet.slot == 1)
            return
        now = _perf_ns()
        if packet.send_ns:
            self.added.observe_us(max(0, now - packet.send_ns) // 1000)
        channel = packet.channel
        if packet.kind is Kind.MIRROR:
            router = self.plane.routers.get(channel)
            audience = PLAIN
            if packet.routed:
                audience = (packet.only, packet.sends[: packet.sends.index(channel)])
            if router is None or not router.mirror(
                packet.source, packet.slot, packet.payload, now, audience
            ):
                self.mirror_drops += 1
            return
        sends = packet.sends or (channel,)
        entry = self.sources.get(packet.source)
        key = (sends, packet.only, packet.priority, packet.hold)
        if entry is not None and entry[4] == key and channel in entry[3]:
            source, _, route, here, _ = entry  # the common case: nothing changed
        else:
            try:
                route = Route(sends, (), packet.only, priority=packet.priority, hold=packet.hold)
            except ValueError:  # a channel named twice
                self.gate.drops["malformed"] += 1
                return
            if entry is None:
                # a talker of another worker, here the owner of ``channel``: a member of the
                # channels it is relayed into here only (their owner arbitrates the others)
                here = frozenset((channel,))
                try:
                    source = self.plane.attach_source(packet.source, route, arbitrated=here)
                except ValueError:  # the id is a local session's: not ours to relay
                    self.gate.drops["unknown_peer"] += 1
                    return
                source.relayed = True
            else:
                # its level, hold or target changed at home (talk_right, emergency, console),
                # or it is relayed into one more channel owned here (an all-call)
                source, _, _, here, _ = entry
                here = frozenset(c for c in (*here, channel) if c in sends)
                self.plane.route_source(packet.source, route, arbitrated=here)
        if packet.level_ext_id:
            source.level_ext_id = packet.level_ext_id
        self.sources[packet.source] = (source, time.monotonic(), route, here, key)
        if len(here) == 1:
            sink = source.sink
            if sink is not None:
                sink(packet.payload, now)
            return
        router = self.plane.routers.get(channel)
        member = router.members.get(packet.source) if router is not None else None
        if member is not None:
            router.on_rtp(member, packet.payload, now)

    def sweep(self, now: float | None = None) -> None:
        """Detach relayed talkers silent for ``IDLE_SECONDS`` (periodic)."""
        now = time.monotonic() if now is None else now
        for sid, (_, last, _, _, _) in list(self.sources.items()):
            if now - last > IDLE_SECONDS:
                del self.sources[sid]
                self.plane.detach_source(sid)

    def is_relayed(self, session_id: str) -> bool:
        return session_id in self.sources

    # ------------------------------------------------------------------ metrics
    def stats(self) -> dict[str, Any]:
        """The counters the worker reports to the parent."""
        return {
            "packets": self.packets,
            "sent": dict(self.sent),
            "mirror_drops": self.mirror_drops,
            "quiet": dict(self.quiet),
            "send_drops": self.send_drops,
            "received": self.gate.accepted,
            "drops": dict(self.gate.drops),
            "added_ms": self.added.summary_ms((50, 99)),
        }
