"""The single UDP port: demultiplexes every datagram to a transport (RFC 7983 first byte).

Peers are found by ICE username (``ourUfrag:theirUfrag``) for STUN, then by their validated
address for everything else. A decrypted RTP packet goes straight to what its transport is bound
to (its router member, :attr:`Transport.sink`): no look-up by session or channel. A datagram from
an address that never passed an ICE check is dropped and counted, whatever it claims to be.
Nothing raises out of ``datagram_received``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pylibsrtp

from voice_server.limits import SO_RCVBUFFORCE, SO_SNDBUFFORCE, size_buffer
from voice_server.media.counters import MediaCounters
from voice_server.media.errors import PacketError
from voice_server.media.opus_fec import has_fec
from voice_server.media.red import RED_PT, parse_payload
from voice_server.media.rtcp import ReceiverReport, SenderReport, parse_compound
from voice_server.media.rtp import read_header
from voice_server.media.rxtime import ANC_SIZE, arrival_ns, enable_timestamps
from voice_server.media.stun import is_stun
from voice_server.media.stun import parse as parse_stun
from voice_server.media.tcp_endpoint import TcpMediaServer
from voice_server.media.tcp_peers import TcpAddress
from voice_server.media.transport import Address, Transport, TransportState, parse_stun_username
from voice_server.ratelimit import TokenBucket

log = logging.getLogger(__name__)
_perf_ns = time.perf_counter_ns

RECV_BUFFER = 4 * 1024 * 1024
RECV_SIZE = 2048  # larger than any datagram a WebRTC audio peer sends (MTU-sized)
READ_BATCH = 256
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)  # Linux values
_IP_PMTUDISC_PROBE = getattr(socket, "IP_PMTUDISC_PROBE", 3)  # DF set, path MTU not tracked
SEND_BUFFER = 4 * 1024 * 1024
#: RTCP a participant may send before it is dropped unread (a browser sends a few per second;
#: a storm of valid-looking packets would otherwise cost an SRTP check each)
RTCP_RATE = 50.0
RTCP_BURST = 100


OnChange = Callable[[Transport], None]


class MediaEndpoint:
    """Owns the UDP socket. Reads in batches (up to :data:`READ_BATCH` datagrams per wake-up of
    the event loop) and sends straight to the socket: a full kernel buffer drops and counts the
    copy instead of growing an unbounded user-space buffer."""

    def __init__(self, counters: MediaCounters, on_change: OnChange) -> None:
        self.counters = counters
        self._on_change = on_change
        self.by_ufrag: dict[str, Transport] = {}
        self.by_addr: dict[Address, Transport] = {}
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.recv_buffer = 0
        self.port = 0
        #: the ICE-TCP passive candidate's listener (RFC 6544), None when disabled
        self.tcp: TcpMediaServer | None = None

    # ------------------------------------------------------------------ socket
    def open(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            size_buffer(sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, RECV_BUFFER)
            size_buffer(sock, socket.SO_SNDBUF, SO_SNDBUFFORCE, SEND_BUFFER)
            enable_timestamps(sock)  # forwarding time counts from the kernel's arrival
            if family == socket.AF_INET:
                # Don't Fragment on every datagram (RTP here is far below any MTU): the kernel
                # then skips choosing an IP ID per packet, ~3 % of the forwarding CPU
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)
            sock.bind((host, port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.recv_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def open_tcp(self, host: str, port: int) -> int:
        """Listen for ICE-TCP peers too; returns the TCP port. Their packets take the same
        path as datagrams, with a :class:`TcpAddress`."""
        tcp = TcpMediaServer(
            self.counters, self.datagram_received, self._validated, on_closed=self._tcp_closed
        )
        tcp.open(host, port)
        self.tcp = tcp
        return tcp.port

    def _validated(self, addr: TcpAddress) -> bool:
        return addr in self.by_addr

    def _tcp_closed(self, addr: TcpAddress) -> None:
        """A TCP peer's connection ended: its address is valid no more."""
        transport = self.by_addr.pop(addr, None)
        if transport is not None:
            transport.valid_addrs.discard(addr)

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        recv = sock.recvmsg
        handle = self.datagram_received
        for _ in range(READ_BATCH):
            try:
                data, anc, _flags, addr = recv(RECV_SIZE, ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors surface here on Linux: count, never raise
                self.counters.drop_send_error += 1
                continue
            handle(data, addr, arrival_ns(anc))

    def fileno(self) -> int | None:
        """The socket's descriptor (for batched sends), None when closed."""
        return self._sock.fileno() if self._sock is not None else None

    def sendto(self, data: bytes, addr: Address) -> None:
        if type(addr) is TcpAddress:
            if self.tcp is None:
                raise OSError("no ICE-TCP listener")
            self.tcp.send(data, addr)
            return
        sock = self._sock
        if sock is None:
            raise OSError("media socket closed")
        sock.sendto(data, addr)

    def _send_all(self, datagrams: list[bytes], addr: Address) -> None:
        for d in datagrams:
            try:
                self.sendto(d, addr)
            except OSError:
                self.counters.drop_send_error += 1

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self.tcp is not None:
            self.tcp.close()
            self.tcp = None
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None

    # ------------------------------------------------------------------ registry
    def register(self, transport: Transport) -> None:
        self.by_ufrag[transport.ufrag] = transport

    def restart_ice(self, transport: Transport, ufrag: str, pwd: str) -> None:
        """New local ICE credentials for ``transport`` (its old ufrag stays routed to it while
        the transport answers checks with it)."""
        transport.restart_ice(ufrag, pwd)
        self.by_ufrag[ufrag] = transport

    def unregister(self, transport: Transport) -> None:
        for ufrag in [u for u, t in self.by_ufrag.items() if t is transport]:
            del self.by_ufrag[ufrag]
        for addr in transport.valid_addrs:
            if self.by_addr.get(addr) is transport:
                del self.by_addr[addr]
        handle = self._timers.pop(transport.session_id, None)
        if handle is not None:
            handle.cancel()
        bye = transport.close()
        if bye and transport.remote is not None:
            self._send_all(bye, transport.remote)
        if self.tcp is not None:
            for addr in list(transport.valid_addrs):
                if type(addr) is TcpAddress:
                    self.tcp.close_peer(addr)

    # ------------------------------------------------------------------ receive
    def datagram_received(self, data: bytes, addr: Any, t0: int = 0) -> None:
        """One datagram from ``addr``; ``t0`` is when it arrived (``perf_counter_ns``; the
        kernel's receive timestamp), now when not given."""
        if not t0:
            t0 = _perf_ns()
        if len(addr) > 2:  # IPv6 sockets give (host, port, flow, scope)
            addr = (addr[0], addr[1])
        try:
            b0 = data[0] if data else 0
            transport = self.by_addr.get(addr)
            if 127 < b0 < 192 and transport is not None:
                if 191 < data[1] < 224:
                    self._on_rtcp(transport, data, addr)
                    return
                rx = transport.rx
                if rx is None or transport.state is not TransportState.CONNECTED:
                    self.counters.drop_not_ready += 1
                    return
                try:
                    plain = rx.unprotect(data)
                except pylibsrtp.Error:
                    self.counters.drop_bad_srtp += 1
                    return
                self.counters.packets_in += 1
                self.counters.bytes_in += len(data)
                if addr != transport.remote:
                    self._latch(transport, addr)
                try:
                    pt, _m, seq, ts, ssrc, hlen = read_header(plain)
                    end = len(plain)
                    if pt == RED_PT:  # the primary frame's LBRR flag
                        hlen, end = parse_payload(plain, hlen)[1]
                except PacketError:
                    pass  # the router counts it
                else:
                    reception = transport.reception
                    reception.packet(seq, ts, ssrc, t0 / 1e9)
                    if has_fec(memoryview(plain)[hlen:end]):
                        reception.fec_packets += 1
                        self.counters.fec_packets_in += 1
                sink = transport.sink
                if sink is not None:
                    sink(plain, t0)
            elif b0 < 4:
                self._on_stun(data, addr)
            elif 19 < b0 < 64 and transport is not None:
                self._on_dtls(transport, data, addr)
            else:
                self.counters.drop_unknown_source += 1
        except Exception:  # a bug must not take the socket down: count and go on
            self.counters.drop_bad_rtp += 1
            log.exception("media datagram handling failed")

    def _on_stun(self, data: bytes, addr: Address) -> None:
        if not is_stun(data):
            self.counters.drop_bad_stun += 1
            return
        try:
            msg = parse_stun(data)
        except PacketError:
            self.counters.drop_bad_stun += 1
            return
        ufrag = parse_stun_username(msg)
        transport = self.by_ufrag.get(ufrag) if ufrag is not None else None
        if transport is not None and ufrag != transport.ufrag:
            old = transport.previous
            if old is None or old[0] != ufrag:  # a generation an ICE restart retired
                del self.by_ufrag[ufrag]  # type: ignore[arg-type]
                transport = None
        if transport is None:
            self.counters.drop_bad_stun += 1
            return
        remote = transport.remote
        result = transport.on_stun(msg, addr, time.monotonic())
        if result.error is not None:
            self.counters.drop_bad_stun += 1
        else:
            self.counters.stun_requests += 1
        if result.newly_valid:
            previous = self.by_addr.get(addr)
            if previous is not None and previous is not transport:
                previous.valid_addrs.discard(addr)
            self.by_addr[addr] = transport
        if result.newly_valid or transport.remote != remote:
            self._on_change(transport)  # the router caches where media goes
        if result.reply is not None:
            self._send_all([result.reply], addr)

    def _on_dtls(self, transport: Transport, data: bytes, addr: Address) -> None:
        was = transport.state
        out = transport.on_dtls(data, addr)
        self._send_all(out, addr)
        self._schedule_dtls(transport)
        self._after(transport, was)

    def _schedule_dtls(self, transport: Transport) -> None:
        old = self._timers.pop(transport.session_id, None)
        if old is not None:
            old.cancel()
        delay = transport.dtls.timeout()
        if delay is None or transport.state in (TransportState.CLOSED, TransportState.FAILED):
            return
        loop = asyncio.get_running_loop()
        self._timers[transport.session_id] = loop.call_later(
            max(delay, 0.001), self._dtls_timer, transport
        )

    def _dtls_timer(self, transport: Transport) -> None:
        self._timers.pop(transport.session_id, None)
        was = transport.state
        out = transport.on_dtls_timeout()
        addr = transport.dtls_addr
        if out and addr is not None:
            self._send_all(out, addr)
        self._schedule_dtls(transport)
        self._after(transport, was)

    def _after(self, transport: Transport, was: TransportState) -> None:
        if transport.state is was:
            return
        if transport.state is TransportState.CONNECTED:
            self.counters.dtls_handshakes += 1
        elif transport.state is TransportState.FAILED:
            self.counters.dtls_failures += 1
        self._on_change(transport)

    def _latch(self, transport: Transport, addr: Address) -> None:
        """Authenticated SRTP/SRTCP came from ``addr``, a validated address other than where
        media goes: the peer's agent switched its selected pair (a network handover: Chromium
        moves to a pair it already checked without a new nomination for seconds), so media goes
        there now (mediasoup's ``MayForceSelectedTuple``). Only addresses that passed a check
        with our credentials are in ``by_addr``, and SRTP's replay window refuses a copy."""
        transport.remote = addr
        self.counters.media_latched += 1
        self._on_change(transport)  # the router caches where media goes

    def _on_rtcp(self, transport: Transport, data: bytes, addr: Address | None = None) -> None:
        rx = transport.rx
        if rx is None:
            self.counters.drop_not_ready += 1
            return
        now_s = _perf_ns() / 1e9
        bucket = transport.rtcp_bucket
        if bucket is None:
            bucket = transport.rtcp_bucket = TokenBucket(RTCP_RATE, RTCP_BURST, now_s)
        if not bucket.allow(now_s):
            self.counters.drop_rtcp_flood += 1
            return
        try:
            plain = rx.unprotect_rtcp(data)
            packets = parse_compound(plain)
        except (pylibsrtp.Error, PacketError):
            self.counters.drop_bad_rtcp += 1
            return
        self.counters.rtcp_in += 1
        if addr is not None and addr != transport.remote:
            self._latch(transport, addr)
        now = now_s
        for packet in packets:
            if isinstance(packet, ReceiverReport | SenderReport):
                self.counters.rtcp_receiver_reports += len(packet.reports)
                reception = transport.reception
                if isinstance(packet, SenderReport) and packet.ssrc == reception.ssrc:
                    reception.sender_report(packet.ntp_timestamp, now)
                if packet.reports:  # how it hears us: kept for the talkers' reports
                    transport.downlink_fraction = max(b.fraction_lost for b in packet.reports)
                    transport.downlink_at = now
