"""The media plane: one UDP endpoint, a router per channel, a transport per session.

Implements the signaling hub's :class:`~voice_server.signaling.hub.MediaPort` in terms of session
ids and :class:`~voice_server.media.route.Route` values (it knows nothing of signaling
sessions): ``open`` makes a transport for a route and returns the server's SDP offer, ``answer``
applies the participant's answer, ``set_route`` changes what a session talks into and hears
during the call (returning a renegotiation offer when it now hears a channel its peer connection
has no slot m-lines for), ``close`` tears it down. Server-side sources (no peer) are attached to
routes with ``attach_source``. Owns six periodic jobs: talk hangover ticks (50 ms), RTCP sender
reports (every 2 s per active slot and listener), receiver reports to talkers (every 1 s), RTCP
keepalives to participants sending voice (every 100 ms) and to the listeners of a talk (every
250 ms), and ICE consent expiry (30 s without a check).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from voice_server.histogram import LatencyHistogram, make_bounds_us
from voice_server.media import native
from voice_server.media.counters import MediaCounters
from voice_server.media.dtls import Certificate
from voice_server.media.endpoint import MediaEndpoint
from voice_server.media.errors import PacketError
from voice_server.media.negotiation import Block, Negotiation, mids, slot_ssrcs
from voice_server.media.red import RED_PT
from voice_server.media.route import Route
from voice_server.media.router import Member, Peer, Router, TalkEvents, Tap
from voice_server.media.rtcp import build_receiver_report, build_sender_report
from voice_server.media.sdp import (
    OfferParams,
    SdpError,
    build_offer,
    new_ice_credentials,
    new_slot_ssrcs,
)
from voice_server.media.sdp import parse_answer as parse_sdp_answer
from voice_server.media.slot_stream import CLOCK_RATE
from voice_server.media.source import ServerSource
from voice_server.media.transport import Transport, TransportState
from voice_server.metrics import Family
from voice_server.talk.detector import TalkRules

log = logging.getLogger(__name__)

OPUS_PT = 111
CNAME = "voice-server"
TICK_SECONDS = 0.05
RTCP_SECONDS = 2.0
# Sender reports go out in this many rounds per RTCP_SECONDS, a share of each channel's
# listeners in each: one pass over a thousand listeners (a protect and a send each) held the event
# loop for ~20 ms, and voice queued in the socket behind it.
RTCP_ROUNDS = 40
#: receiver reports to each talker about its uplink, in RTCP_ROUNDS rounds per period
TALKER_REPORT_SECONDS = 1.0
#: an empty receiver report (RC=0, + SDES; no loss figure, so the encoder's FEC decision still
#: rests on the 1 s reports) to each participant sending voice, this often: the phone's stall
#: detector (clients/web/js/call.js) hears from the server while it talks and so tells a dead
#: path within ~0.5 s (a network change) instead of waiting out the 1 s report interval. A
#: talker's next keepalive is due at most this long after its path died: it bounds how late
#: the phone notices (the few talkers of a channel make it cheap)
KEEPALIVE_SECONDS = 0.1
#: the listeners of a channel where someone talks get one this often (their audio already comes
#: 50 times a second; these cover its DTX pauses and a talker's hangover: a listener's stall
#: rule is 400-600 ms, clients/web/js/call.js)
LISTENER_KEEPALIVE_SECONDS = 0.25
#: a burst whose talker asks for an ICE restart (its network changed) is kept going this long
#: without voice (talk/detector.py TalkDetector.hold): its voice comes back on the new path a
#: few hundred ms later (a second network already up), or once the browser lists its new
#: address (Chromium on Linux: 2 s after it appears, Android 1 s), and meanwhile its listeners
#: keep expecting audio, so one whose own path died too (both on the same Wi-Fi) still detects
#: that as fast as mid-burst. A talker whose session ends gives its slot back at once
RESTART_HOLD_MS = 2500
#: ICE consent expiry is checked this often
CONSENT_CHECK_SECONDS = 5.0
#: a listener's own reports count towards the talkers' reported loss for this long
DOWNLINK_FRESH_SECONDS = 10.0
#: a talker whose last packet is older than this gets no more reports
TALKER_QUIET_SECONDS = 10.0
CONSENT_TIMEOUT = 30.0


_NEVER_CONNECTED = (TransportState.NEW, TransportState.CONNECTING)
Sink = Callable[[bytes, int], None]


class RelayHook(Protocol):
    """The relay to other media workers (``media/relay.py``; None with one process): wraps a
    local talker's sinks (channel, its member's sink here, in send order) so that each send
    channel's packets go to that channel's owner."""

    def wrap(self, sinks: Sequence[tuple[str, Sink]], peer: Peer, route: Route) -> Sink: ...

    def mirror_out(
        self,
        channel: str,
        talker: str,
        slot: int,
        data: bytes,
        t0_ns: int,
        route: Route | None = None,
    ) -> None:
        """What a router forwarded, to the other workers with listeners of its channel."""
        ...


@dataclass(frozen=True, slots=True)
class Renegotiation:
    """An offer for a live peer connection (``offer {"renegotiate": true}``)."""

    sdp: str
    revision: int
    blocks: tuple[Block, ...] = ()  # its slot m-lines, channel by channel


@dataclass(eq=False, slots=True)
class _Placed:
    """A source or participant in the plane: its route and the routers it is placed in."""

    peer: Peer
    route: Route
    channels: frozenset[str] = frozenset()
    #: a relayed talker's: the send channels it is a member of here (None: all of them)
    arbitrated: frozenset[str] | None = None

    @property
    def wanted(self) -> frozenset[str]:
        """The channels it needs a router in."""
        if self.arbitrated is None:
            return self.route.channels
        return frozenset(self.route.hears) | (frozenset(self.route.sends) & self.arbitrated)


@dataclass(eq=False, slots=True)
class _Link(_Placed):
    """A participant: its transport, and its peer connection's slot m-lines."""

    sdp: Negotiation = field(default_factory=lambda: Negotiation(0, ()))

    @property
    def transport(self) -> Transport:
        assert isinstance(self.peer, Transport)
        return self.peer


def pick_announce_ip(media_host: str, announce_ip: str | None) -> str:
    """The address put in SDP: explicit, else the bind address, else this host's address."""
    if announce_ip:
        return announce_ip
    if media_host not in ("0.0.0.0", "::", ""):
        return media_host
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        # No packet is sent: connect() on UDP only picks the outgoing interface.
        s.connect(("192.0.2.1", 9))
        address = str(s.getsockname()[0])
        if not ipaddress.ip_address(address).is_unspecified:
            return address
    return "127.0.0.1"


class MediaPlane:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        announce_ip: str | None,
        tcp_port: int | None = 0,
        slots: int,
        events: TalkEvents,
        on_transport_lost: Callable[[str], None] | None = None,
        rules: TalkRules | None = None,
        preroll_packets: int = 5,
        tap: Tap[Any] | None = None,
        red: bool = True,
    ) -> None:
        self.tap = tap
        #: the relay to other media workers (``serve --workers N``); None: one process
        self.relay: RelayHook | None = None
        #: each channel's slot SSRCs (workers: the same on all); None: new random ones
        self.slot_ssrcs_of: Callable[[str], tuple[int, ...]] | None = None
        #: audio RED offered (RFC 2198, :mod:`voice_server.media.red`)
        self.red = red
        self.host = host
        self.port = port
        #: ICE-TCP passive candidate's port: None = the UDP port's number, 0 = no ICE-TCP
        self.tcp_port = tcp_port
        self.announce_ip = pick_announce_ip(host, announce_ip)
        self.slots = slots
        self.events = events
        self.on_transport_lost = on_transport_lost
        self.rules = rules or TalkRules()
        self.preroll_packets = preroll_packets
        self.counters = MediaCounters()
        self.histogram = LatencyHistogram()
        #: talk onset (first voiced packet of a burst) -> first packet of the burst forwarded
        self.onset_histogram = LatencyHistogram(make_bounds_us(max_us=2_000_000))
        self.certificate = Certificate.generate()
        self.routers: dict[str, Router] = {}
        self.links: dict[str, _Link] = {}
        self.sources: dict[str, _Placed] = {}
        self.endpoint = MediaEndpoint(self.counters, self._on_change)
        self._tasks: list[asyncio.Task[None]] = []
        self._sdp_version = 1
        self._rtcp_round = 0
        self._talker_round = 0
        #: the SSRC our receiver reports come from (we send no media from it)
        self._report_ssrc = secrets.randbits(32) or 1
        self._keepalive_report = build_receiver_report(ssrc=self._report_ssrc, cname=CNAME)
        #: the participants whose voice arrived in the latest talker keepalive round
        self._voiced: set[str] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # build (first run: the system cc, ~0.5 s) or load the native fan-out now, not in the
        # first join's set-up on the event loop
        fast = await asyncio.to_thread(native.load)
        log.info("media fan-out", extra={"native": fast is not None})
        self.endpoint.open(self.host, self.port)
        self.port = self.endpoint.port
        if self.tcp_port != 0:
            try:
                wanted = self.port if self.tcp_port is None else self.tcp_port
                self.tcp_port = self.endpoint.open_tcp(self.host, wanted)
            except OSError:
                self.endpoint.close()
                raise
        self._tasks = [asyncio.create_task(self._clock(), name="media-clock")]
        log.info(
            "media plane listening",
            extra={
                "host": self.host,
                "port": self.port,
                "tcp_port": self.tcp_port or None,
                "announce": self.announce_ip,
                "rcvbuf": self.endpoint.recv_buffer,
            },
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for session_id in list(self.links):
            self._close(session_id)
        self.sources.clear()
        for router in self.routers.values():
            router.close()  # cascades: bursts end, slots are given back
        self.routers.clear()
        self.endpoint.close()

    def _schedule(self) -> list[tuple[Callable[[], None], int, int]]:
        """The periodic jobs as (job, every how many clock ticks, runs per tick)."""
        jobs = [
            (self._tick, TICK_SECONDS),
            (self._send_reports, RTCP_SECONDS / RTCP_ROUNDS),
            (self._send_talker_reports, TALKER_REPORT_SECONDS / RTCP_ROUNDS),
            (self._send_keepalives, KEEPALIVE_SECONDS),
            (self._send_listener_keepalives, LISTENER_KEEPALIVE_SECONDS),
            (self._check_consent, CONSENT_CHECK_SECONDS),
        ]
        return [
            (job, max(1, round(period / TICK_SECONDS)), max(1, round(TICK_SECONDS / period)))
            for job, period in jobs
        ]

    async def _clock(self) -> None:
        """Every periodic job on one timer of TICK_SECONDS, each at its own period (one
        wake-up of the process per tick, not one per job: an idle plane woke ~85 times a
        second, each media worker as much)."""
        schedule = self._schedule()
        n = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            n += 1
            for job, every, runs in schedule:
                if n % every:
                    continue
                for _ in range(runs):
                    try:
                        job()
                    except Exception:
                        log.exception("media periodic job failed")

    @property
    def transports(self) -> dict[str, Transport]:
        return {sid: link.transport for sid, link in self.links.items()}

    # ------------------------------------------------------------------ MediaPort
    def open(self, session_id: str, route: Route) -> str:
        """A new peer connection for ``session_id`` on ``route``: returns the offer."""
        self._close(session_id)
        creds = new_ice_credentials()
        transport = Transport(session_id, creds.ufrag, creds.pwd, self.certificate)
        blocks = tuple((c, self._ssrcs(c)) for c in route.hears)
        link = _Link(transport, route, sdp=Negotiation(secrets.randbits(62), blocks))
        self.links[session_id] = link
        self.endpoint.register(transport)
        self._place(link)
        return self._offer(link, blocks)

    def answer(
        self, session_id: str, sdp: str, revision: int | None = None
    ) -> Renegotiation | None:
        """Apply an answer: to the first offer (raise ValueError when unusable), or to a
        renegotiation offer (one that does not match the offer out, or answers a superseded one,
        is ignored and counted: the call keeps its previous state). Returns a renegotiation offer
        to send when the route changed meanwhile."""
        link = self.links.get(session_id)
        if link is None:
            raise ValueError("no transport for this session")
        transport = link.transport
        if not transport.answered:
            if revision not in (None, 0):
                self.counters.renegotiations_ignored += 1
                return None
            self._first_answer(link, sdp)
            return self._renegotiate(link)
        blocks = link.sdp.expects(revision)
        if blocks is None:
            if link.sdp.pending is None and revision is None:
                raise ValueError("an answer was already applied to this offer")
            self.counters.renegotiations_ignored += 1
            return None
        try:
            parsed = parse_sdp_answer(sdp, mids(blocks), payload_type=OPUS_PT)
        except (SdpError, PacketError):
            self.counters.renegotiations_ignored += 1
            return None
        restart = transport.restarting  # every offer since an ICE restart has new credentials
        if (
            (parsed.ice_ufrag != transport.remote_ufrag and not restart)
            or transport.remote_fingerprint is None
            or parsed.fingerprint.lower() != transport.remote_fingerprint.lower()
        ):
            self.counters.renegotiations_ignored += 1  # a renegotiation keeps ICE and DTLS
            return None
        if restart:
            transport.ice_restarted(parsed.ice_ufrag)
        link.sdp.settle()
        if parsed.audio_level_id is not None:
            transport.level_ext_id = parsed.audio_level_id
        transport.mic_enabled = parsed.can_talk
        transport.red = parsed.red_heard
        self.counters.renegotiations += 1
        self._place(link)
        return self._renegotiate(link)

    def _first_answer(self, link: _Link, sdp: str) -> None:
        transport = link.transport
        try:
            parsed = parse_sdp_answer(sdp, mids(link.sdp.blocks), payload_type=OPUS_PT)
        except (SdpError, PacketError) as exc:
            raise ValueError(str(exc)) from None
        was = transport.state
        transport.apply_answer(parsed)
        # DTLS may finish before the answer arrives: the transport connects (or fails the
        # fingerprint check) here, not in the endpoint, so count it here
        if transport.state is not was:
            if transport.state is TransportState.CONNECTED:
                self.counters.dtls_handshakes += 1
            elif transport.state is TransportState.FAILED:
                self.counters.dtls_failures += 1
        self._on_change(transport)

    def set_route(self, session_id: str, route: Route) -> Renegotiation | None:
        """Change what a session talks into and hears, now (channels it hears already have
        their m-lines); returns the renegotiation offer that adds the m-lines it lacks, if any
        (those channels are heard once its answer is applied)."""
        link = self.links.get(session_id)
        if link is None:
            raise ValueError("no transport for this session")
        link.route = route
        self._place(link)
        return self._renegotiate(link)

    def blocks(self, session_id: str) -> tuple[Block, ...]:
        """The session's slot m-lines, channel by channel: those of the offer out, else of the
        offer answered (blocks are only ever appended, so a mid keeps its meaning)."""
        link = self.links.get(session_id)
        if link is None:
            return ()
        pending = link.sdp.pending
        return pending[1] if pending is not None else link.sdp.blocks

    def route_of(self, session_id: str) -> Route | None:
        placed = self.links.get(session_id) or self.sources.get(session_id)
        return placed.route if placed is not None else None

    def close(self, session_id: str) -> None:
        self._close(session_id)

    def has_transport(self, session_id: str) -> bool:
        link = self.links.get(session_id)
        return link is not None and link.transport.state not in (
            TransportState.FAILED,
            TransportState.CLOSED,
        )

    # ------------------------------------------------------------------ server-side sources
    def attach_source(
        self,
        source_id: str,
        route: Route,
        *,
        logged: bool = True,
        arbitrated: frozenset[str] | None = None,
    ) -> ServerSource:
        """A talker with no peer (an announcement, a relayed stream) on ``route``: its packets
        (:meth:`ServerSource.send`) are forwarded like a participant's (``logged``: its bursts go
        to the call-log tap; an announcement writes its own rows; ``arbitrated``: a relayed
        talker's send channels arbitrated here, the only ones it is a member of here, its route
        still deciding its audience)."""
        if route.hears:
            raise ValueError("a server-side source hears nothing")
        if source_id in self.sources or source_id in self.links:
            raise ValueError("that id is in use")
        source = ServerSource(source_id, payload_type=OPUS_PT)
        source.logged = logged
        placed = self.sources[source_id] = _Placed(source, route, arbitrated=arbitrated)
        self._place(placed)
        return source

    def route_source(
        self, source_id: str, route: Route, *, arbitrated: frozenset[str] | None = None
    ) -> None:
        placed = self.sources[source_id]
        if route.hears:
            raise ValueError("a server-side source hears nothing")
        placed.route = route
        placed.arbitrated = arbitrated
        self._place(placed)

    def slot_free(self, channel: str) -> bool:
        """A new talker in ``channel`` would get a slot now (no router yet: nobody holds one)."""
        router = self.routers.get(channel)
        return router is None or not router.table.busy

    def holds_slot(self, session_id: str, channel: str) -> bool:
        """The source or participant holds a slot of ``channel`` (confirmed or tentative)."""
        router = self.routers.get(channel)
        member = router.members.get(session_id) if router is not None else None
        return member is not None and member.slot is not None

    def media_connected(self, session_id: str) -> bool:
        """The session's transport is connected (media flows)."""
        link = self.links.get(session_id)
        return link is not None and link.transport.state is TransportState.CONNECTED

    def detach_source(self, source_id: str) -> None:
        placed = self.sources.pop(source_id, None)
        if placed is not None:
            placed.route = Route((), ())
            self._place(placed)

    # ------------------------------------------------------------------ internals
    def _router(self, channel: str) -> Router:
        router = self.routers.get(channel)
        if router is None:
            fixed = self.slot_ssrcs_of
            router = self.routers[channel] = Router(
                channel,
                slot_ssrcs=fixed(channel) if fixed is not None else new_slot_ssrcs(self.slots),
                payload_type=OPUS_PT,
                rules=self.rules,
                preroll_packets=self.preroll_packets,
                events=self.events,
                sendto=self.endpoint.sendto,
                counters=self.counters,
                histogram=self.histogram,
                tap=self.tap,
                onset_histogram=self.onset_histogram,
                fileno=self.endpoint.fileno,
            )
            if self.relay is not None:
                router.mirror_out = self.relay.mirror_out
        return router

    def _place(self, placed: _Placed) -> None:
        """Put a source or participant where its route says (the one place membership follows
        routes): a member of each router it talks into, a consumer of each it hears through
        m-lines its peer connection has; bind its packets to its members."""
        peer, route = placed.peer, placed.route
        heard = placed.sdp.heard(route.hears, self._ssrcs) if isinstance(placed, _Link) else set()
        # what it hears now (the rest once a renegotiation answer brings their m-lines): the
        # routers judge who hears a talker twice by this
        now = replace(route, hears=tuple(c for c in route.hears if c in heard))
        # a transport that never connected is in no fan-out, and its packets cannot arrive yet:
        # its routers rebuild when it connects (joins cost one rebuild less)
        unseen = isinstance(peer, Transport) and peer.state in _NEVER_CONNECTED
        members: list[Member] = []
        wanted = placed.wanted
        here = placed.arbitrated
        for channel in sorted(placed.channels | wanted):
            router = self._router(channel)
            send = None if here is None else channel in here and channel in route.sends
            member = router.place(peer, now, hear=channel in heard, send=send)
            if member is not None:
                members.append(member)
            if not unseen:
                router.refresh_listeners()
            if router.empty and not self._wanted(channel):
                router.close()
                del self.routers[channel]
        placed.channels = wanted
        # mid 0 of a participant (or a source's packets) goes to its members, in route order
        members.sort(key=lambda m: route.sends.index(m.router.channel))
        sink: Callable[[bytes, int], None] | None = None
        if len(members) == 1:  # the common case: straight to the router, no Python frame between
            sink = partial(members[0].router.on_rtp, members[0])
        elif members:
            sink = _fan_in(tuple(members))
        elif self.links.get(peer.session_id) is placed:  # a listener's: dropped, counted
            sink = self._listen_only
        if members and self.relay is not None and not getattr(peer, "relayed", False):
            assert sink is not None
            sinks = [(m.router.channel, partial(m.router.on_rtp, m)) for m in members]
            sink = self.relay.wrap(sinks, peer, route)
        if isinstance(peer, Transport | ServerSource):
            peer.sink = sink

    def _listen_only(self, plain: bytes, t0_ns: int) -> None:
        self.counters.drop_listen_only += 1

    def _wanted(self, channel: str) -> bool:
        """A route still names the channel (its router keeps its slot SSRCs, which an offer
        may have announced)."""
        return any(channel in p.route.channels for p in self.links.values()) or any(
            channel in p.wanted for p in self.sources.values()
        )

    def ice_restart(self, session_id: str) -> Renegotiation:
        """An ICE restart of the session's own transport (the network changed): new local ICE
        credentials on the same transport, which keeps its DTLS and SRTP state, its routes and
        slots; returns the offer (``offer {"renegotiate": true, "restart": true}``). Raises
        ValueError when the session has no answered transport."""
        link = self.links.get(session_id)
        if link is None or not link.transport.answered:
            raise ValueError("no connected transport for this session")
        creds = new_ice_credentials()
        self.endpoint.restart_ice(link.transport, creds.ufrag, creds.pwd)
        blocks = link.sdp.restart_ice()
        self.counters.ice_restarts += 1
        now_ns = time.perf_counter_ns()
        for router in self.routers.values():
            if router.hold_talk(session_id, now_ns, RESTART_HOLD_MS):
                self.counters.talk_held_restart += 1
        return Renegotiation(self._offer(link, blocks), link.sdp.revision)

    def _renegotiate(self, link: _Link) -> Renegotiation | None:
        """A renegotiation offer when the route hears a channel without its m-lines (after the
        first answer only: the first offer/answer goes on undisturbed)."""
        if not link.transport.answered:
            return None
        blocks = link.sdp.propose(link.route.hears, self._ssrcs)
        if blocks is None:
            return None
        return Renegotiation(self._offer(link, blocks), link.sdp.revision, blocks)

    def _ssrcs(self, channel: str) -> tuple[int, ...]:
        return self._router(channel).slot_ssrcs

    def _offer(self, link: _Link, blocks: tuple[Block, ...]) -> str:
        self._sdp_version += 1
        ssrcs = slot_ssrcs(blocks)
        transport = link.transport
        return build_offer(
            OfferParams(
                session_id=link.sdp.sdp_session,
                session_version=self._sdp_version,
                ice_ufrag=transport.ufrag,
                ice_pwd=transport.pwd,
                fingerprint=self.certificate.fingerprint,
                ip=self.announce_ip,
                port=self.port,
                slot_ssrcs=ssrcs,
                cname=CNAME,
                slots=len(ssrcs),
                tcp_port=self.tcp_port or None,
                red_payload_type=RED_PT if self.red else None,
                ice_generation=transport.generation,
            )
        )

    def _close(self, session_id: str) -> None:
        link = self.links.pop(session_id, None)
        if link is None:
            return
        self.endpoint.unregister(link.transport)  # closes the transport
        link.route = Route((), ())
        self._place(link)

    def _on_change(self, transport: Transport) -> None:
        link = self.links.get(transport.session_id)
        if link is not None and link.peer is transport:
            for channel in link.channels:
                router = self.routers.get(channel)
                if router is not None:
                    router.refresh_listeners()
        if transport.state is TransportState.FAILED:
            log.info(
                "media transport failed",
                extra={"session": transport.session_id, "reason": transport.failure},
            )

    def _tick(self) -> None:
        now = time.perf_counter_ns()
        for router in list(self.routers.values()):
            router.tick(now)

    def _send_reports(self) -> None:
        """One round: sender reports to every ``RTCP_ROUNDS``-th listener of each channel (so
        each listener gets its reports every ``RTCP_SECONDS``, and neither many channels nor one
        big one make a burst)."""
        k = self._rtcp_round = (self._rtcp_round + 1) % RTCP_ROUNDS
        now_ns = time.perf_counter_ns()
        wall = time.time()
        for r, router in enumerate(list(self.routers.values())):
            members = list(router.consumers.values())[(k + r) % RTCP_ROUNDS :: RTCP_ROUNDS]
            if not members:
                continue
            for slot, stream in enumerate(router.streams):
                if not stream.forwarded:
                    continue
                elapsed = max(0, now_ns - router.stream_last_ns[slot]) / 1e9
                report = build_sender_report(
                    ssrc=stream.ssrc,
                    unix_time=wall,
                    rtp_timestamp=stream.timestamp + int(elapsed * CLOCK_RATE),
                    packet_count=stream.forwarded,
                    octet_count=router.stream_octets[slot],
                    cname=CNAME,
                )
                for member in members:
                    tr = member.transport
                    if not tr.media_ready or tr.tx is None or tr.remote is None:
                        continue
                    try:
                        self.endpoint.sendto(tr.tx.protect_rtcp(report), tr.remote)
                        self.counters.rtcp_out += 1
                    except Exception:
                        self.counters.drop_send_error += 1

    def _send_talker_reports(self) -> None:
        """One round of receiver reports to talkers (each talker every
        ``TALKER_REPORT_SECONDS``): the loss, jitter and LSR/DLSR of its microphone stream as
        the server receives it, so its encoder turns Opus in-band FEC on when loss appears. The
        reported *fraction* is raised to the worst fresh downlink loss among the listeners of
        its channels (their FEC protects the whole path); the cumulative count and the highest
        sequence number stay the uplink's own."""
        k = self._talker_round = (self._talker_round + 1) % RTCP_ROUNDS
        now = time.perf_counter()
        worst: dict[str, int] = {}
        for link in list(self.links.values())[k::RTCP_ROUNDS]:
            tr = link.transport
            reception = tr.reception
            if (
                not tr.media_ready
                or tr.tx is None
                or tr.remote is None
                or reception.ssrc is None
                or now - reception.last_packet_at > TALKER_QUIET_SECONDS
            ):
                continue
            fold = 0
            for channel in link.channels:
                if channel not in worst:
                    worst[channel] = self._worst_downlink(channel, now)
                fold = max(fold, worst[channel])
            block = reception.block(now, fold)
            if block is None:
                continue
            report = build_receiver_report(ssrc=self._report_ssrc, reports=(block,), cname=CNAME)
            try:
                self.endpoint.sendto(tr.tx.protect_rtcp(report), tr.remote)
                self.counters.rtcp_out += 1
                self.counters.rtcp_talker_reports += 1
            except Exception:
                self.counters.drop_send_error += 1

    def _send_keepalives(self) -> None:
        """An empty receiver report to each participant whose voice arrived since the previous
        round (``Reception.voiced_since_mark``: DTX silence gets none, the 1 s reports suffice
        there): a few dozen bytes every KEEPALIVE_SECONDS to each talker, so its phone's stall
        detector hears from the server while it talks."""
        voiced = set()
        for sid, link in list(self.links.items()):
            if link.transport.reception.voiced_since_mark():
                voiced.add(sid)
                self._keepalive(link.transport)
        self._voiced = voiced

    def _send_listener_keepalives(self) -> None:
        """The same to each participant that hears a channel where someone holds a slot, every
        LISTENER_KEEPALIVE_SECONDS (a talker already has its own): its audio has DTX pauses,
        and a talker who vanishes holds the slot for the hangover, so the keepalives tell a
        listener's dead path from a pause. Only while someone talks."""
        talking = {c for c, router in self.routers.items() if router.active_talkers}
        if not talking:
            return
        for sid, link in list(self.links.items()):
            if sid not in self._voiced and not talking.isdisjoint(link.route.hears):
                self._keepalive(link.transport)

    def _keepalive(self, tr: Transport) -> None:
        if not tr.media_ready or tr.tx is None or tr.remote is None:
            return
        try:
            self.endpoint.sendto(tr.tx.protect_rtcp(self._keepalive_report), tr.remote)
            self.counters.rtcp_out += 1
            self.counters.rtcp_keepalives += 1
        except Exception:
            self.counters.drop_send_error += 1

    def _worst_downlink(self, channel: str, now: float) -> int:
        router = self.routers.get(channel)
        if router is None:
            return 0
        worst = 0
        for consumer in router.consumers.values():
            peer = consumer.transport
            if isinstance(peer, Transport) and now - peer.downlink_at < DOWNLINK_FRESH_SECONDS:
                worst = max(worst, peer.downlink_fraction)
        return worst

    def _check_consent(self) -> None:
        now = time.monotonic()
        for session_id, link in list(self.links.items()):
            transport = link.transport
            if transport.state is TransportState.CLOSED:
                continue
            started = transport.last_check or transport.created_at
            if now - started > CONSENT_TIMEOUT or transport.state is TransportState.FAILED:
                if transport.state is not TransportState.FAILED:
                    self.counters.transports_closed_consent += 1
                self._close(session_id)
                if self.on_transport_lost is not None:
                    self.on_transport_lost(session_id)

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        talkers = sum(r.active_talkers for r in self.routers.values())
        fams = self.counters.families(self.histogram, talkers, len(self.links))
        paths = {"udp": 0, "tcp": 0}
        for link in self.links.values():
            if link.transport.media_ready:
                paths[link.transport.path] += 1
        by_path = Family(
            "voice_media_transports_by_path",
            "gauge",
            "Connected media transports by the path their media takes (as the server sees it)",
        )
        for path, count in paths.items():
            by_path.add(count, path=path)
        fams.append(by_path)
        tcp = self.endpoint.tcp
        fams.append(
            Family("voice_media_tcp_connections", "gauge", "Open ICE-TCP connections by state")
            .add(tcp.open_connections - tcp.pending if tcp else 0, state="checked")
            .add(tcp.pending if tcp else 0, state="pending")
        )
        fams.append(
            self.onset_histogram.family(
                "voice_media_talk_onset_seconds",
                "Talk onset (first voiced packet of a burst) to its first packet forwarded",
                stride=2,
            )
        )
        return fams


def _fan_in(members: tuple[Member, ...]) -> Callable[[bytes, int], None]:
    """A source that talks into several channels: each packet to each of its members."""

    def sink(plain: bytes, t0_ns: int) -> None:
        for member in members:
            member.router.on_rtp(member, plain, t0_ns)

    return sink
