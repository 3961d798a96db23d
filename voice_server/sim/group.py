"""Many simulated participants in one process: one pacer, one certificate, shared counters.

``SimGroup`` connects participants with bounded concurrency (:meth:`SimGroup.add`, one channel)
or one at a time on the caller's schedule (:meth:`SimGroup.participant` +
:meth:`SimGroup.connect`, any channel: the load tester), starts the single pacing task, and
sums their counters into a :class:`GroupTotals` snapshot (cheap: a pass over the
participants), so a benchmark can take the difference of two snapshots over its window.
With ``poller=True`` every participant's socket is read through one shared
:class:`~voice_server.sim.rxpoll.RxPoller` drained on the pacer's 5 ms tick (ICE and DTLS
answers too: each handshake round trip may wait up to one tick, arrival times of media come
from the kernel). Woken per datagram instead, a thousand participants joining while hundreds
already receive audio saturate the process and their joins time out. With ``shared=True``
(Linux) every participant has its own loopback address on one socket instead
(:class:`~voice_server.sim.shared_udp.SharedUdp`, ``recvmmsg`` batches on the same tick): the
load generator's cheapest receive path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, fields

from voice_server.histogram import LatencyHistogram
from voice_server.media.dtls import Certificate
from voice_server.sim.audio import opus_frames
from voice_server.sim.pacer import Pacer
from voice_server.sim.participant import SimParticipant
from voice_server.sim.rxpoll import RxPoller
from voice_server.sim.shared_udp import AVAILABLE as SHARED_AVAILABLE
from voice_server.sim.shared_udp import SharedUdp

__all__ = ["GroupTotals", "SimGroup"]


@dataclass(frozen=True, slots=True)
class GroupTotals:
    """Sums over the participants at one instant."""

    sent: int = 0
    received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    expected: int = 0  # from sequence numbers, per received SSRC
    lost: int = 0
    duplicates: int = 0
    reordered: int = 0
    rtcp_received: int = 0
    late_sends: int = 0
    socket_errors: int = 0
    srtp_errors: int = 0
    srtp_verified: int = 0
    not_ready: int = 0

    def __sub__(self, other: GroupTotals) -> GroupTotals:
        return GroupTotals(
            *(getattr(self, f.name) - getattr(other, f.name) for f in fields(GroupTotals))
        )

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(GroupTotals)}


class SimGroup:
    """Simulated participants of one channel, driven by one pacer."""

    def __init__(
        self,
        url: str,
        channel: str,
        token_for: Callable[[int], str],
        *,
        dtx: bool = True,
        phases: int = 4,
        certificate: Certificate | None = None,
        poller: bool = False,
        shared: bool = False,
        net: int = 1,
    ) -> None:
        self.url = url
        self.channel = channel
        self._token_for = token_for
        self.dtx = dtx
        self.certificate = certificate or Certificate.generate()
        self.frames = opus_frames()
        self.latency = LatencyHistogram()
        self.pacer = Pacer(phases=phases)
        self.participants: list[SimParticipant] = []
        self.shared = SharedUdp(net=net) if shared and SHARED_AVAILABLE else None
        self.poller = RxPoller() if poller and self.shared is None else None
        if self.shared is not None:
            self.pacer.after_tick.append(self.shared.drain)
        elif self.poller is not None:
            self.pacer.after_tick.append(self.poller.drain)

    def participant(
        self, token: str, channel: str, device_id: str, *, talking: bool = False
    ) -> SimParticipant:
        """A new member of the group (not connected yet: see :meth:`connect`)."""
        p = SimParticipant(
            self.url,
            token,
            channel,
            device_id,
            certificate=self.certificate,
            frames=self.frames,
            latency=self.latency,
            dtx=self.dtx,
            phase=len(self.participants),
            poller=self.poller,
            shared=self.shared,
        )
        p.talking = talking
        self.participants.append(p)
        return p

    async def connect(
        self, p: SimParticipant, within: float = 30.0, phase: int | None = None
    ) -> None:
        """Connect one participant made by :meth:`participant`, then pace it (on ``phase`` of
        the pacer, or the next in turn; raises when connecting fails; the participant stays in
        the group so :meth:`close` cleans it up)."""
        self.pacer.start()  # it also drains the poller: running before anyone connects
        await p.connect(within)
        self.pacer.add(p, phase)

    async def add(
        self, count: int, *, talking: bool = False, concurrency: int = 16, within: float = 30.0
    ) -> list[SimParticipant]:
        """Connect ``count`` more participants (``talking`` ones start sending at once)."""
        first = len(self.participants)
        new = [
            self.participant(self._token_for(first + i), self.channel, f"sim-{first + i}")
            for i in range(count)
        ]
        gate = asyncio.Semaphore(concurrency)

        async def connect(p: SimParticipant) -> None:
            async with gate:
                await self.connect(p, within)

        for p in new:
            p.talking = talking
        await asyncio.gather(*(connect(p) for p in new))
        return new

    def totals(self) -> GroupTotals:
        sums = dict.fromkeys((f.name for f in fields(GroupTotals)), 0)
        for p in self.participants:
            for name in (
                "sent",
                "received",
                "bytes_sent",
                "bytes_received",
                "rtcp_received",
                "late_sends",
                "socket_errors",
                "srtp_errors",
                "srtp_verified",
                "not_ready",
            ):
                sums[name] += getattr(p, name)
            for s in p.streams.values():
                sums["expected"] += s.expected
                sums["lost"] += s.lost
                sums["duplicates"] += s.duplicates
                sums["reordered"] += s.reordered
        return GroupTotals(**sums)

    def jitter_ms(self) -> list[float]:
        """Current RFC 3550 jitter of every received stream, ms."""
        return [s.jitter_ms for p in self.participants for s in p.streams.values()]

    def local_ports(self) -> set[int]:
        return {p.local_port for p in self.participants if p.local_port}

    async def close(self) -> None:
        await self.pacer.stop()
        await asyncio.gather(*(p.close() for p in self.participants), return_exceptions=True)
        if self.poller is not None:
            self.poller.close()
        if self.shared is not None:
            self.shared.close()
