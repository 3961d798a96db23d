"""The media plane: one UDP endpoint, a router per channel, transports per session.

Implements the signaling hub's :class:`~voice_server.signaling.hub.MediaPort`: ``open`` makes a
transport and returns the server's SDP offer, ``answer`` applies the participant's answer,
``close`` tears it down. Owns three periodic jobs: talk hangover ticks (50 ms), RTCP sender
reports (every 2 s per active slot and listener) and ICE consent expiry (30 s without a check).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import time
from collections.abc import Callable

from voice_server.histogram import LatencyHistogram, make_bounds_us
from voice_server.media import native
from voice_server.media.counters import MediaCounters
from voice_server.media.dtls import Certificate
from voice_server.media.endpoint import MediaEndpoint
from voice_server.media.errors import PacketError
from voice_server.media.router import Router, TalkEvents, Tap
from voice_server.media.rtcp import build_sender_report
from voice_server.media.sdp import (
    OfferParams,
    SdpError,
    build_offer,
    new_ice_credentials,
    new_slot_ssrcs,
)
from voice_server.media.sdp import parse_answer as parse_sdp_answer
from voice_server.media.slot_stream import CLOCK_RATE
from voice_server.media.transport import Transport, TransportState
from voice_server.metrics import Family
from voice_server.signaling.sessions import Session
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
CONSENT_TIMEOUT = 30.0


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
        slots: int,
        events: TalkEvents,
        on_transport_lost: Callable[[str], None] | None = None,
        rules: TalkRules | None = None,
        preroll_packets: int = 5,
        tap: Tap | None = None,
    ) -> None:
        self.tap = tap
        self.host = host
        self.port = port
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
        self.transports: dict[str, Transport] = {}
        self._channel_of: dict[str, str] = {}
        self.endpoint = MediaEndpoint(self.counters, self._on_rtp, self._on_change)
        self._tasks: list[asyncio.Task[None]] = []
        self._sdp_version = 1
        self._rtcp_round = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # build (first run: the system cc, ~0.5 s) or load the native fan-out now, not in the
        # first join's set-up on the event loop
        fast = await asyncio.to_thread(native.load)
        log.info("media fan-out", extra={"native": fast is not None})
        self.endpoint.open(self.host, self.port)
        self.port = self.endpoint.port
        self._tasks = [
            asyncio.create_task(self._every(TICK_SECONDS, self._tick), name="media-tick"),
            asyncio.create_task(
                self._every(RTCP_SECONDS / RTCP_ROUNDS, self._send_reports), name="media-rtcp"
            ),
            asyncio.create_task(self._every(5.0, self._check_consent), name="media-consent"),
        ]
        log.info(
            "media plane listening",
            extra={
                "host": self.host,
                "port": self.port,
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
        for session_id in list(self.transports):
            self._close(session_id)
        self.endpoint.close()

    async def _every(self, seconds: float, job: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                job()
            except Exception:
                log.exception("media periodic job failed")

    # ------------------------------------------------------------------ MediaPort
    def open(self, session: Session) -> str:
        self._close(session.id)
        router = self.routers.get(session.channel)
        if router is None:
            router = Router(
                session.channel,
                slot_ssrcs=new_slot_ssrcs(self.slots),
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
            self.routers[session.channel] = router
        creds = new_ice_credentials()
        transport = Transport(session.id, creds.ufrag, creds.pwd, self.certificate)
        self.transports[session.id] = transport
        self._channel_of[session.id] = session.channel
        self.endpoint.register(transport)
        router.add(transport)
        self._sdp_version += 1
        return build_offer(
            OfferParams(
                session_id=secrets.randbits(62),
                session_version=self._sdp_version,
                ice_ufrag=creds.ufrag,
                ice_pwd=creds.pwd,
                fingerprint=self.certificate.fingerprint,
                ip=self.announce_ip,
                port=self.port,
                slot_ssrcs=router.slot_ssrcs,
                cname=CNAME,
                slots=self.slots,
            )
        )

    def answer(self, session: Session, sdp: str) -> None:
        transport = self.transports.get(session.id)
        if transport is None:
            raise ValueError("no transport for this session")
        try:
            parsed = parse_sdp_answer(sdp, self.slots + 1, payload_type=OPUS_PT)
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

    def close(self, session: Session) -> None:
        self._close(session.id)

    def has_transport(self, session: Session) -> bool:
        transport = self.transports.get(session.id)
        return transport is not None and transport.state not in (
            TransportState.FAILED,
            TransportState.CLOSED,
        )

    # ------------------------------------------------------------------ internals
    def _close(self, session_id: str) -> None:
        transport = self.transports.pop(session_id, None)
        channel = self._channel_of.pop(session_id, None)
        if transport is None:
            return
        self.endpoint.unregister(transport)
        router = self.routers.get(channel) if channel else None
        if router is not None:
            router.remove(session_id)
            if not router.members:
                del self.routers[router.channel]

    def _router_of(self, transport: Transport) -> Router | None:
        channel = self._channel_of.get(transport.session_id)
        return self.routers.get(channel) if channel else None

    def _on_rtp(self, transport: Transport, plain: bytes, t0_ns: int) -> None:
        router = self._router_of(transport)
        if router is None:
            return
        member = router.members.get(transport.session_id)
        if member is not None:
            router.on_rtp(member, plain, t0_ns)

    def _on_change(self, transport: Transport) -> None:
        router = self._router_of(transport)
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
            members = list(router.members.values())[(k + r) % RTCP_ROUNDS :: RTCP_ROUNDS]
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

    def _check_consent(self) -> None:
        now = time.monotonic()
        for session_id, transport in list(self.transports.items()):
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
        fams = self.counters.families(self.histogram, talkers, len(self.transports))
        fams.append(
            self.onset_histogram.family(
                "voice_media_talk_onset_seconds",
                "Talk onset (first voiced packet of a burst) to its first packet forwarded",
                stride=2,
            )
        )
        return fams
