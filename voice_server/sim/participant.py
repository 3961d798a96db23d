"""A lean simulated participant: signaling, ICE, DTLS-SRTP and RTP, no aiortc, no decoding.

Meant to be run by the hundred in one process (:class:`~voice_server.sim.group.SimGroup`), so
nothing here runs a coroutine per packet:

- signaling: one WebSocket per participant: ``join`` → ``joined`` → ``offer``, the answer from
  :mod:`voice_server.sim.answer`; then a reader task drains and counts server messages; a later
  ``offer`` (the server lost the transport) starts a new media link, as a browser would;
- media: one UDP socket (:func:`~voice_server.sim.rxpoll.open_udp`: 1 MiB buffer, kernel
  receive timestamps) read by ``loop.add_reader`` or a shared
  :class:`~voice_server.sim.rxpoll.RxPoller`, or an address on a
  :class:`~voice_server.sim.shared_udp.SharedUdp`; ICE as the controlling agent
  (:mod:`voice_server.sim.ice`: checks every 50 ms until a success, then consent every 5 s);
  the DTLS client of :mod:`voice_server.sim.dtls_client`; SRTP through
  :mod:`voice_server.media.srtp_fast`;
- sending is driven by the group's pacer (:meth:`on_frame` every 20 ms;
  :class:`~voice_server.sim.source.MicSource` says what to send);
- receiving: every RTP packet is counted per SSRC from its header, which SRTP leaves in clear
  (:mod:`rx_stats`: loss from sequence gaps, RFC 3550 jitter, first arrival), and 1 in
  ``verify_every`` is authenticated and decrypted (all by default); send stamps written by other
  simulated talkers give the one-way latency through the server into a shared histogram.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter, deque
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

from voice_server.histogram import LatencyHistogram
from voice_server.media.dtls import Certificate, DtlsState
from voice_server.media.sdp import IceCredentials, new_ice_credentials
from voice_server.media.srtp import make_sessions
from voice_server.media.srtp_fast import SrtpCodec, fast_session
from voice_server.sim.answer import OfferInfo, build_answer, parse_offer
from voice_server.sim.audio import read_stamp
from voice_server.sim.dtls_client import DtlsClient
from voice_server.sim.ice import IceChecks
from voice_server.sim.rx_stats import StreamStats
from voice_server.sim.rxpoll import ANC_SIZE, RxPoller, arrival_ns, open_udp
from voice_server.sim.shared_udp import SharedEndpoint, SharedUdp
from voice_server.sim.source import MicSource

__all__ = ["SimParticipant"]

RCVBUF = 1 << 20
READ_BATCH = 64
RECV_SIZE = 2048
CHECK_INTERVAL = 0.05
CONSENT_INTERVAL = 5.0
_perf_ns = time.perf_counter_ns
_RTP_FIELDS = struct.Struct("!HII")  # seq, timestamp, ssrc at offset 2
TALK_EVENTS = 64  # talk events kept
_TALK_EVENTS = frozenset({"talk_started", "talk_stopped", "duck", "preempted"})


class SimParticipant:
    """One simulated participant; see the module docstring."""

    def __init__(
        self,
        url: str,
        token: str,
        channel: str,
        device_id: str,
        *,
        certificate: Certificate,
        frames: tuple[bytes, ...],
        latency: LatencyHistogram | None = None,
        dtx: bool = False,
        phase: int = 0,
        poller: RxPoller | None = None,
        shared: SharedUdp | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.channel = channel
        self.device_id = device_id
        self.certificate = certificate
        self.latency = latency
        self.source = MicSource(frames, dtx=dtx, phase=phase)
        self.poller = poller
        self.shared = shared
        #: set by the owner: send voice frames on :meth:`on_frame`
        self.talking = False
        self.ssrc = self.source.ssrc
        self.session_id: str | None = None
        self.offer: OfferInfo | None = None
        self.streams: dict[int, StreamStats] = {}
        self.messages: Counter[str] = Counter()
        #: the talk events received (talk_started, talk_stopped, duck, preempted), the latest
        self.talk_events: deque[dict[str, Any]] = deque(maxlen=TALK_EVENTS)
        # counters
        self.sent = 0
        self.received = 0
        self.bytes_sent = 0  # SRTP bytes of sent RTP packets
        self.bytes_received = 0  # SRTP bytes of received RTP packets
        self.rtcp_received = 0
        self.late_sends = 0
        self.socket_errors = 0
        self.srtp_errors = 0
        self.not_ready = 0
        self.reoffers = 0  # offers after the first: the server replaced the transport
        self.renegotiations = 0  # renegotiation offers answered on the same transport
        self._creds: IceCredentials | None = None
        #: authenticate and decrypt 1 received packet in this many (1: every one)
        self.verify_every = 1
        self.srtp_verified = 0
        # perf_counter_ns (CLOCK_MONOTONIC on Linux: comparable across processes)
        self.ws_open_ns = -1  # the signaling WebSocket is open
        self.offer_ns = -1  # the server's offer arrived
        self.connected_at_ns = -1  # SRTP keys in place
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sock: socket.socket | SharedEndpoint | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dtls: DtlsClient | None = None
        self._rx: SrtpCodec | None = None
        self._tx: SrtpCodec | None = None
        self._ice: IceChecks | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ready: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ state
    @property
    def media_ready(self) -> bool:
        return self._tx is not None

    @property
    def local_port(self) -> int:
        return int(self._sock.getsockname()[1]) if self._sock is not None else 0

    @property
    def consent_replies(self) -> int:
        """Consent checks the server answered after ICE connected."""
        return self._ice.consent_replies if self._ice is not None else 0

    @property
    def signaling_closed(self) -> str | None:
        """How the signaling WebSocket closed (code and reason), None while it is open."""
        ws = self._ws
        return None if ws is None or ws.close_code is None else f"{ws.close_code} {ws.close_reason}"

    @property
    def first_audio_ns(self) -> int:
        """When the first RTP packet arrived (perf_counter ns), -1 if none yet."""
        firsts = [s.first_ns for s in self.streams.values() if s.first_ns >= 0]
        return min(firsts) if firsts else -1

    # ------------------------------------------------------------------ connect
    async def connect(self, within: float = 20.0) -> None:
        """Join, answer the offer, run ICE and DTLS; return when SRTP keys are in place."""
        async with asyncio.timeout(within):
            self._loop = asyncio.get_running_loop()
            self._ready = self._loop.create_future()
            ws = await websockets.connect(self.url, max_size=1 << 20, compression=None)
            self._ws = ws
            self.ws_open_ns = _perf_ns()
            join = {"v": 1, "type": "join", "token": self.token, "channel": self.channel}
            await ws.send(json.dumps({**join, "device_id": self.device_id}))
            offer_sdp: str | None = None
            while offer_sdp is None:
                msg = self._count(await ws.recv())
                if msg.get("type") == "joined":
                    self.session_id = str(msg["session_id"])
                elif msg.get("type") == "offer":
                    offer_sdp = str(msg["sdp"])
                elif msg.get("type") == "error" and msg.get("fatal"):
                    raise RuntimeError(f"join refused: {msg.get('code')}: {msg.get('message')}")
            self.offer_ns = _perf_ns()
            self._reader = asyncio.create_task(self._read_signaling(ws), name="sim-signaling")
            await self._start_media(ws, offer_sdp)
            await self._ready

    async def _start_media(self, ws: ClientConnection, offer_sdp: str) -> None:
        """Answer ``offer_sdp`` and start ICE (then DTLS) on a new socket."""
        self.offer = offer = parse_offer(offer_sdp)
        self._creds = creds = new_ice_credentials()
        self._open_socket(offer)
        self._dtls = DtlsClient(self.certificate, expected_fingerprint=offer.fingerprint)
        answer = build_answer(
            offer, credentials=creds, fingerprint=self.certificate.fingerprint, ssrc=self.ssrc
        )
        await ws.send(json.dumps({"v": 1, "type": "answer", "sdp": answer}))
        self._ice = IceChecks(offer.ice_ufrag, offer.ice_pwd, creds.ufrag)
        self._send_check()

    def _count(self, raw: str | bytes) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(raw)
        kind = str(msg.get("type"))
        self.messages[kind] += 1
        if kind in _TALK_EVENTS:
            self.talk_events.append(msg)
        return msg

    async def send_message(self, **msg: Any) -> None:
        """Send one signaling message (a console's ``monitor`` or ``talk_target``)."""
        if self._ws is None:
            raise RuntimeError("not connected")
        await self._ws.send(json.dumps({"v": 1, **msg}))

    async def _read_signaling(self, ws: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                msg = self._count(raw)
                if msg.get("type") == "offer" and msg.get("renegotiate") and self.offer:
                    await self._renegotiate(ws, str(msg["sdp"]), msg.get("revision"))
                elif msg.get("type") == "offer" and self.offer is not None:
                    self.reoffers += 1
                    self._stop_media()
                    self._ready = None
                    await self._start_media(ws, str(msg["sdp"]))
                elif msg.get("type") == "error" and self._ready is not None:
                    if not self._ready.done():
                        self._ready.set_exception(
                            RuntimeError(f"server error: {msg.get('code')}: {msg.get('message')}")
                        )

    async def _renegotiate(self, ws: ClientConnection, sdp: str, revision: Any) -> None:
        """More slot m-lines on the same peer connection (a console's ``monitor``): answered
        with the same ICE credentials and certificate, media going on."""
        self.offer = offer = parse_offer(sdp)
        assert self._creds is not None
        answer = build_answer(
            offer, credentials=self._creds, fingerprint=self.certificate.fingerprint, ssrc=self.ssrc
        )
        msg = {"v": 1, "type": "answer", "sdp": answer, "revision": revision}
        await ws.send(json.dumps(msg))
        self.renegotiations += 1

    def _open_socket(self, offer: OfferInfo) -> None:
        if self.shared is not None and ":" not in offer.ip:
            self._sock = self.shared.endpoint((offer.ip, offer.port), self._on_datagram)
            return
        self._sock = sock = open_udp(offer.ip, offer.port, RCVBUF)
        if self.poller is not None:
            self.poller.add(sock.fileno(), self._read_one)
            return
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), self._readable)

    # ------------------------------------------------------------------ timers
    def _later(self, name: str, delay: float, callback: Any) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        if self._loop is not None and self._sock is not None:
            self._timers[name] = self._loop.call_later(delay, callback)

    def _send_check(self) -> None:
        ice = self._ice
        if ice is None:
            return
        self._send(ice.request())
        self._later("ice", CONSENT_INTERVAL if ice.connected else CHECK_INTERVAL, self._send_check)

    def _dtls_timer(self) -> None:
        if self._dtls is None:
            return
        for out in self._dtls.handle_timeout():
            self._send(out)
        self._after_dtls()

    # ------------------------------------------------------------------ send
    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send(data)
        except OSError:
            self.socket_errors += 1

    def on_frame(self, frame: int, now_ns: int, late: bool) -> None:
        """The pacer's 20 ms tick number ``frame``: send a voice or DTX frame if due."""
        tx = self._tx
        if tx is None or self._sock is None:
            return
        packet = self.source.packet(frame, now_ns, self.talking)
        if packet is None:
            return
        srtp = tx.protect(packet)
        if srtp is None:
            self.srtp_errors += 1
            return
        try:
            self._sock.send(srtp)
        except OSError:
            self.socket_errors += 1
            return
        self.sent += 1
        self.bytes_sent += len(srtp)
        if late:
            self.late_sends += 1

    # ------------------------------------------------------------------ receive
    def _readable(self) -> None:
        for _ in range(READ_BATCH):
            if not self._read_one():
                return

    def _read_one(self) -> bool:
        """Handle one datagram; False when none was waiting (the poller calls this once per
        readiness: its epoll is level-triggered)."""
        sock = self._sock
        if not isinstance(sock, socket.socket):
            return False
        try:
            data, anc, _flags, _addr = sock.recvmsg(RECV_SIZE, ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # ICMP port unreachable and the like
            self.socket_errors += 1
            return False
        if data:
            self._on_datagram(data, arrival_ns(anc))
        return True

    def _on_datagram(self, data: bytes, now: int) -> None:
        b0 = data[0]
        if 127 < b0 < 192:
            if 191 < data[1] < 224:
                self.rtcp_received += 1
            else:
                self._on_rtp(data, now)
        elif b0 < 4:
            self._on_stun(data)
        elif 19 < b0 < 64:
            self._on_dtls(data)

    def _on_rtp(self, data: bytes, now: int) -> None:
        rx = self._rx
        if rx is None:
            self.not_ready += 1
            return
        # SRTP leaves the header and its extensions in clear: the statistics need no decryption;
        # 1 packet in ``verify_every`` is authenticated and decrypted, and its send stamp read
        verify = not self.received % self.verify_every
        self.received += 1
        self.bytes_received += len(data)
        seq, ts, ssrc = _RTP_FIELDS.unpack_from(data, 2)
        stats = self.streams.get(ssrc)
        if stats is None:
            stats = self.streams[ssrc] = StreamStats(ssrc)
        stats.on_packet(seq, ts, now)
        if verify:
            plain = rx.unprotect(data)
            if plain is None:
                self.srtp_errors += 1
                return
            self.srtp_verified += 1
            stamp = read_stamp(plain)
            if stamp is not None and self.latency is not None:
                self.latency.observe_us((now - stamp) // 1000)

    def _on_stun(self, data: bytes) -> None:
        ice = self._ice
        if ice is None or not ice.on_response(data):
            return
        self._later("ice", CONSENT_INTERVAL, self._send_check)
        assert self._dtls is not None
        for out in self._dtls.start():
            self._send(out)
        self._after_dtls()

    def _on_dtls(self, data: bytes) -> None:
        if self._dtls is None:
            return
        for out in self._dtls.feed(data):
            self._send(out)
        self._after_dtls()

    def _after_dtls(self) -> None:
        dtls = self._dtls
        if dtls is None:
            return
        if dtls.state is DtlsState.CONNECTED and self._rx is None:
            assert dtls.profile is not None and dtls.keying is not None
            rx, tx = make_sessions(dtls.profile, dtls.keying)
            self._rx, self._tx = fast_session(rx), fast_session(tx)
            self.connected_at_ns = _perf_ns()
            old = self._timers.pop("dtls", None)
            if old is not None:
                old.cancel()
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            return
        if dtls.state is DtlsState.FAILED:
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(RuntimeError(f"DTLS failed: {dtls.failure}"))
            return
        delay = dtls.timeout()
        if delay is not None:
            self._later("dtls", max(delay, 0.001), self._dtls_timer)

    # ------------------------------------------------------------------ close
    def _stop_media(self, *, notify: bool = False) -> None:
        """Close the UDP socket (with a DTLS close_notify when ``notify``), cancel timers."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if notify and self._dtls is not None and self._sock is not None:
            for out in self._dtls.close():
                self._send(out)
        sock = self._sock
        if isinstance(sock, socket.socket):
            if self.poller is not None:
                self.poller.remove(sock.fileno())
            elif self._loop is not None:
                self._loop.remove_reader(sock.fileno())
        if sock is not None:
            sock.close()
            self._sock = None
        self._rx = self._tx = None

    async def close(self, *, leave: bool = True) -> None:
        """Leave (optionally), close the WebSocket and the UDP socket, cancel every timer."""
        self._stop_media(notify=True)
        ws = self._ws
        if ws is not None:
            if leave:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await ws.send(json.dumps({"v": 1, "type": "leave"}))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
