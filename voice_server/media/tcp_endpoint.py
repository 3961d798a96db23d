"""The ICE-TCP passive candidate (RFC 6544): one listening TCP socket next to the UDP port.

Socket I/O only: packets are unframed (RFC 4571, :mod:`~voice_server.media.framing`) and handed
to the same receive function as UDP datagrams, with the peer's :class:`~voice_server.media.
tcp_peers.TcpAddress`; so ICE-lite checks, DTLS, SRTP, slots and counters are the UDP ones.
Sending frames the packet and writes it without blocking; what the kernel does not take waits in
the connection's bounded :class:`~voice_server.media.tcp_peers.OutQueue` (oldest frames dropped
and counted): a slow reader never stalls the event loop or other peers.

A connection must send a valid ICE check within :attr:`Admission.deadline`
(``Admission`` limits how many may wait, in all and per address); a malformed or over-long
frame closes it. Nothing raises out of the event-loop callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

from voice_server.media.counters import MediaCounters
from voice_server.media.errors import PacketError
from voice_server.media.framing import FrameDecoder, frame
from voice_server.media.tcp_peers import Admission, OutQueue, TcpAddress

log = logging.getLogger(__name__)
_perf_ns = time.perf_counter_ns

RECV_CHUNK = 65536
READS_PER_WAKEUP = 16
SWEEP_SECONDS = 1.0
OUT_QUEUE_BYTES = 64 * 1024
#: the kernel's send buffer per connection: small, so a slow reader's backlog (stale audio)
#: stays in the out queue, where the oldest is dropped, rather than seconds of it in the kernel
KERNEL_SEND_BUFFER = 32 * 1024

Deliver = Callable[[bytes, TcpAddress, int], None]
IsValid = Callable[[TcpAddress], bool]


class _Conn:
    __slots__ = ("addr", "decoder", "queue", "sock", "writing")

    def __init__(self, sock: socket.socket, addr: TcpAddress, out_limit: int) -> None:
        self.sock = sock
        self.addr = addr
        self.decoder = FrameDecoder()
        self.queue = OutQueue(out_limit)
        self.writing = False


class TcpMediaServer:
    """Listens for ICE-TCP peers; see the module docstring."""

    def __init__(
        self,
        counters: MediaCounters,
        deliver: Deliver,
        is_valid: IsValid,
        *,
        admission: Admission | None = None,
        out_limit: int = OUT_QUEUE_BYTES,
        on_closed: Callable[[TcpAddress], None] | None = None,
    ) -> None:
        self.counters = counters
        self._deliver = deliver
        self._is_valid = is_valid
        self.admission = admission or Admission()
        self.out_limit = out_limit
        self._on_closed = on_closed
        self.conns: dict[TcpAddress, _Conn] = {}
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self.port = 0

    # ------------------------------------------------------------------ listening
    def open(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(256)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._accept)
        self._sweeper = self._loop.call_later(SWEEP_SECONDS, self._sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for addr in list(self.conns):
            self.close_peer(addr)
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        self._sock = None

    def _accept(self) -> None:
        listener = self._sock
        if listener is None:
            return
        for _ in range(64):
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, aborted before accept: count, go on
                self.counters.tcp_refused += 1
                return
            addr = TcpAddress(str(peer[0]), int(peer[1]))
            refused = self.admission.admit(addr, time.monotonic())
            if refused is not None or addr in self.conns:
                self.counters.tcp_refused += 1
                sock.close()
                continue
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
            conn = self.conns[addr] = _Conn(sock, addr, self.out_limit)
            self.counters.tcp_accepted += 1
            assert self._loop is not None
            self._loop.add_reader(sock.fileno(), self._readable, conn)

    def _sweep(self) -> None:
        """Close connections that sent no valid ICE check in time."""
        try:
            for addr in self.admission.expired(time.monotonic()):
                self.counters.tcp_expired += 1
                self.close_peer(addr)
        finally:
            if self._loop is not None and self._sock is not None:
                self._sweeper = self._loop.call_later(SWEEP_SECONDS, self._sweep)

    # ------------------------------------------------------------------ receive
    def _readable(self, conn: _Conn) -> None:
        for _ in range(READS_PER_WAKEUP):
            try:
                data = conn.sock.recv(RECV_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close_peer(conn.addr)
                return
            if not data:
                self.close_peer(conn.addr)
                return
            t0 = _perf_ns()
            try:
                packets = conn.decoder.feed(data)
            except PacketError:
                self.counters.tcp_bad_frames += 1
                self.close_peer(conn.addr)
                return
            for packet in packets:
                self._deliver(packet, conn.addr, t0)
                if self.conns.get(conn.addr) is not conn:
                    return  # closed while handling (its transport went away)
            if conn.addr in self.admission.pending and self._is_valid(conn.addr):
                self.admission.settle(conn.addr)

    # ------------------------------------------------------------------ send
    def send(self, packet: bytes, addr: TcpAddress) -> None:
        """Frame and send ``packet``; raise OSError when there is no such connection."""
        conn = self.conns.get(addr)
        if conn is None:
            raise OSError("no TCP connection to that peer")
        data = frame(packet)
        if conn.queue:
            self._queue(conn, data)
            return
        try:
            n = conn.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.close_peer(addr)
            raise
        if n < len(data):
            self._queue(conn, data)
            if n:
                conn.queue.consume(n)

    def _queue(self, conn: _Conn, data: bytes) -> None:
        dropped = conn.queue.push(data)
        if dropped:
            self.counters.tcp_out_dropped += dropped
        if not conn.writing and conn.queue and self._loop is not None:
            conn.writing = True
            self._loop.add_writer(conn.sock.fileno(), self._writable, conn)

    def _writable(self, conn: _Conn) -> None:
        queue = conn.queue
        while queue:
            try:
                n = conn.sock.send(queue.view())
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close_peer(conn.addr)
                return
            queue.consume(n)
        conn.writing = False
        if self._loop is not None:
            self._loop.remove_writer(conn.sock.fileno())

    # ------------------------------------------------------------------ endings
    def close_peer(self, addr: TcpAddress) -> None:
        conn = self.conns.pop(addr, None)
        self.admission.settle(addr)
        if conn is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(conn.sock.fileno())
            if conn.writing:
                self._loop.remove_writer(conn.sock.fileno())
        conn.queue.clear()
        conn.sock.close()
        self.counters.tcp_closed += 1
        if self._on_closed is not None:
            self._on_closed(addr)

    @property
    def open_connections(self) -> int:
        return len(self.conns)

    @property
    def pending(self) -> int:
        return len(self.admission.pending)
