"""The relay socket of one media worker (README "Several processes on one machine").

Each worker binds one Unix datagram socket in the abstract namespace (a name the parent chose at
random and handed over the control socket). A local talker's packet goes, before its own
listeners get it, **once** to each other worker with listeners of its channel
(:class:`~voice_server.media.relay_targets.RelayTargets`), packed and authenticated once
(:mod:`~voice_server.media.relay_packet`). A packet received is checked by the
:class:`~voice_server.media.relay_packet.RelayGate` (every refusal counted) and forwarded here as
a server-side source (:mod:`~voice_server.media.source`): the same routers, slots and fan-outs
as a local talker, never tapped (the talker's own worker taps it) and never relayed again. A
relayed source with no packet for ``IDLE_SECONDS`` is detached.

Nothing here depends on the socket being local: the same datagrams can go over UDP (#20).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from voice_server.histogram import LatencyHistogram
from voice_server.media.relay_packet import RelayGate, RelayPacket, pack
from voice_server.media.relay_targets import RelayTargets
from voice_server.media.route import Route
from voice_server.media.source import ServerSource
from voice_server.talk.arbiter import EpochFence

log = logging.getLogger(__name__)

__all__ = ["IDLE_SECONDS", "WorkerRelay"]

IDLE_SECONDS = 30.0
READ_BATCH = 64
Sink = Callable[[bytes, int], None]
_perf_ns = time.perf_counter_ns


class WorkerRelay:
    def __init__(
        self,
        *,
        index: int,
        incarnation: int,
        key: bytes,
        addresses: dict[int, str],
        plane: Any,
    ) -> None:
        self.index = index
        self.incarnation = incarnation
        self._key = key
        #: worker index -> its abstract socket name (no leading NUL)
        self.addresses = dict(addresses)
        self.plane = plane
        self.peers: dict[int, int] = {}  # worker index -> incarnation (the parent's word)
        self.fence = EpochFence()
        self.gate = RelayGate(key, index, self.peers, self.fence.known)
        self.targets = RelayTargets(index)
        #: relayed talkers here: session id -> (its source, last packet time)
        self.sources: dict[str, tuple[ServerSource, float]] = {}
        self.sent = 0  # datagrams sent (one per target per packet)
        self.packets = 0  # local talker packets that had at least one target
        self.send_drops = 0  # a full or missing peer socket
        #: inter-process hop: the sender's send time -> this worker's receipt
        self.added = LatencyHistogram()
        self.sock: socket.socket | None = None

    # ------------------------------------------------------------------ socket
    def open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind("\0" + self.addresses[self.index])
        sock.setblocking(False)
        self.sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

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
    def wrap(self, sink: Sink, peer: Any, channel: str, priority: int) -> Sink:
        """The plane's hook: ``peer``'s packets also go to the other workers."""
        targets_of = self.targets.targets
        session = peer.session_id
        send = self._send

        def relaying(plain: bytes, t0_ns: int) -> None:
            targets = targets_of(channel)
            if targets:
                send(targets, channel, session, priority, peer.level_ext_id, plain)
            sink(plain, t0_ns)

        return relaying

    def _send(
        self,
        targets: tuple[int, ...],
        channel: str,
        session: str,
        priority: int,
        ext: int,
        plain: bytes,
    ) -> None:
        sock = self.sock
        if sock is None:
            return
        data = pack(
            RelayPacket(
                sender=self.index,
                incarnation=self.incarnation,
                epoch=self.fence.known.get(channel, 0),
                channel=channel,
                source=session,
                payload=plain,
                priority=min(priority, 255),
                send_ns=_perf_ns(),
                level_ext_id=ext,
            ),
            self._key,
        )
        self.packets += 1
        for worker in targets:
            try:
                sock.sendto(data, "\0" + self.addresses[worker])
                self.sent += 1
            except (OSError, KeyError):
                self.send_drops += 1

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

    def _deliver(self, packet: RelayPacket) -> None:
        now = _perf_ns()
        if packet.send_ns:
            self.added.observe_us(max(0, now - packet.send_ns) // 1000)
        entry = self.sources.get(packet.source)
        if entry is None:
            try:
                source = self.plane.attach_source(
                    packet.source, Route((packet.channel,), ()), logged=False
                )
            except ValueError:  # the id is a local session's: not ours to relay
                self.gate.drops["unknown_peer"] += 1
                return
            source.relayed = True
        else:
            source = entry[0]
        if packet.level_ext_id:
            source.level_ext_id = packet.level_ext_id
        self.sources[packet.source] = (source, time.monotonic())
        sink = source.sink
        if sink is not None:
            sink(packet.payload, now)

    def sweep(self, now: float | None = None) -> None:
        """Detach relayed talkers silent for ``IDLE_SECONDS`` (periodic)."""
        now = time.monotonic() if now is None else now
        for sid, (_, last) in list(self.sources.items()):
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
            "sent": self.sent,
            "send_drops": self.send_drops,
            "received": self.gate.accepted,
            "drops": dict(self.gate.drops),
            "added_ms": self.added.summary_ms((50, 99)),
        }
