"""The forwarding hot loop: one rewritten RTP packet to every listener of a channel but its talker.

A :class:`Fanout` is built by the router whenever its listeners change (a member comes or goes,
a transport connects, fails or moves to another address) from one ``(member, SRTP codec, media
address)`` target per listener, so the loop itself reads no attribute per copy. Per copy: one
SRTP protect (libsrtp called directly, :mod:`~voice_server.media.srtp_fast`) and the datagram.

Three ways to send, chosen at build time:

- native (:mod:`~voice_server.media.native`, when the C part could be built): the ``sendmmsg``
  way below with the per-copy loop in C, one call per :data:`CHUNK` copies;
- ``sendmmsg`` (:mod:`~voice_server.media.sendmany`, Linux, every codec a
  :class:`~voice_server.media.srtp_fast.FastSrtp`): each listener's copy is protected in place
  in its own libsrtp buffer and one system call sends each run of up to :data:`CHUNK` copies
  (the talker's own entry splits a run in two);
- ``sendto`` per copy otherwise (other platforms, test doubles).

Copies to ICE-TCP peers (a :class:`~voice_server.media.tcp_peers.TcpAddress`) never join a
``sendmmsg`` batch: they are sent after the UDP copies, one ``sendto`` each (which frames them and
writes or queues them without blocking); the UDP copies' path is the same with or without them.

Counters are added once per packet. The forwarding-time histogram (the datagram's kernel arrival
→ send) is observed once per chunk of :data:`CHUNK` copies, with the time after the chunk's last
send counted for each of its copies: every copy is counted at or after its own send, so the
exposed percentiles are upper bounds of the per-copy ones (by at most one chunk's sending time,
about 0.1–0.2 ms here), and the histogram's count equals ``voice_media_packets_out_total``.
A copy that cannot be protected or sent is skipped and counted (``send_error``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from voice_server.histogram import LatencyHistogram
from voice_server.media import native
from voice_server.media.counters import MediaCounters
from voice_server.media.sendmany import AVAILABLE, MessageBatch, sockaddr
from voice_server.media.sendmany import ffi as _ffi
from voice_server.media.srtp_fast import PROTECT_ADDRESS, ROOM, FastSrtp, SrtpCodec
from voice_server.media.tcp_peers import TcpAddress

__all__ = ["CHUNK", "Fanout", "SendTo"]

CHUNK = 32  # copies per send batch and per histogram observation
_perf_ns = time.perf_counter_ns

Address = tuple[str, int]
SendTo = Callable[[bytes, Address], None]
Target = tuple[object, SrtpCodec, Address]
_Item = tuple[object, Callable[[bytes], int], Any]  # member, protect in place, its iovec
_Plain = tuple[object, Callable[[bytes], bytes | None], Address]  # member, protect, address


class Fanout:
    """Sends a packet to every target but the talker (see the module docstring)."""

    __slots__ = (
        "_batches",
        "_chunks",
        "_counters",
        "_fd",
        "_hist",
        "_native",
        "_sendto",
        "_tcp",
        "size",
    )

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        sendto: SendTo,
        counters: MediaCounters,
        histogram: LatencyHistogram,
        fd: int | None = None,
        use_native: bool = True,
    ) -> None:
        self.size = len(targets)
        self._sendto = sendto
        self._counters = counters
        self._hist = histogram
        self._fd = fd if fd is not None else -1
        self._chunks: list[list[_Plain]] = []
        self._batches: list[tuple[MessageBatch, list[_Item]]] = []
        self._tcp: list[list[_Plain]] = []
        tcp = [t for t in targets if type(t[2]) is TcpAddress]
        if tcp:
            plain_tcp: list[_Plain] = [(key, codec.protect, addr) for key, codec, addr in tcp]
            self._tcp = [plain_tcp[i : i + CHUNK] for i in range(0, len(plain_tcp), CHUNK)]
            targets = [t for t in targets if type(t[2]) is not TcpAddress]
        names = [sockaddr(addr) for _, _, addr in targets]
        packed = [name for name in names if name is not None]
        fast = [codec for _, codec, _ in targets if isinstance(codec, FastSrtp)]
        self._native: _Native | None = None
        usable = fd is not None and AVAILABLE and len(fast) == len(packed) == len(targets)
        lib = native.load() if use_native and usable and targets and PROTECT_ADDRESS else None
        if lib is not None:
            self._native = _Native(lib, targets, fast, packed)
        elif usable:
            for i in range(0, len(targets), CHUNK):
                part = fast[i : i + CHUNK]
                batch = MessageBatch(
                    [codec.buffer_address() for codec in part], packed[i : i + CHUNK]
                )
                items: list[_Item] = [
                    (t[0], c.protect_in_place, batch.iov(k))
                    for k, (t, c) in enumerate(zip(targets[i:], part, strict=False))
                ]
                self._batches.append((batch, items))
        else:
            plain: list[_Plain] = [(key, codec.protect, addr) for key, codec, addr in targets]
            self._chunks = [plain[i : i + CHUNK] for i in range(0, len(plain), CHUNK)]

    @property
    def batched(self) -> bool:
        return bool(self._batches) or self._native is not None

    @property
    def native(self) -> bool:
        return self._native is not None

    def send(self, data: bytes, src: object, t0_ns: int) -> None:
        """Protect and send ``data`` to every target whose member is not ``src``."""
        if self._native is not None:
            self._send_native(data, src, t0_ns)
        elif self._batches:
            self._send_batched(data, src, t0_ns)
        else:
            self._send_each(self._chunks, data, src, t0_ns)
        if self._tcp:
            self._send_each(self._tcp, data, src, t0_ns)

    def _send_batched(self, data: bytes, src: object, t0_ns: int) -> None:
        fd = self._fd
        observe = self._hist.observe_us_n
        sent = failed = octets = 0
        for batch, items in self._batches:
            start = done = 0
            for i, (key, protect, iov) in enumerate(items):
                if key is not src:
                    n = protect(data)
                    if n:
                        iov.iov_len = n
                        octets += n
                        continue
                    failed += 1
                if i > start:  # send the run before the skipped entry
                    ok, bad, lost = batch.send(fd, start, i)
                    done += ok
                    failed += bad
                    octets -= lost
                start = i + 1
            if start < len(items):
                ok, bad, lost = batch.send(fd, start, len(items))
                done += ok
                failed += bad
                octets -= lost
            if done:
                observe((_perf_ns() - t0_ns) // 1000, done)
                sent += done
        self._count(sent, octets, failed)

    def _send_native(self, data: bytes, src: object, t0_ns: int) -> None:
        nat = self._native
        assert nat is not None
        fan = nat.fan_send
        out = nat.out
        observe = self._hist.observe_us_n
        skip = nat.index.get(src, -1)
        n = len(data)
        sent = failed = octets = 0
        for start in range(0, nat.count, CHUNK):
            fan(self._fd, nat.protect, nat.ctxs, nat.bufs, nat.msgs, nat.scratch, start,
                min(start + CHUNK, nat.count), skip, ROOM, data, n, out)  # fmt: skip
            done = out[0]
            if done:
                observe((_perf_ns() - t0_ns) // 1000, done)
                sent += done
            failed += out[1]
            octets += out[2]
        self._count(sent, octets, failed)

    def _send_each(self, chunks: list[list[_Plain]], data: bytes, src: object, t0_ns: int) -> None:
        sendto = self._sendto
        observe = self._hist.observe_us_n
        sent = failed = octets = 0
        for chunk in chunks:
            done = 0
            for key, protect, addr in chunk:
                if key is src:
                    continue
                out = protect(data)
                if out is None:
                    failed += 1
                    continue
                try:
                    sendto(out, addr)
                except OSError:
                    failed += 1
                    continue
                done += 1
                octets += len(out)
            if done:
                observe((_perf_ns() - t0_ns) // 1000, done)
                sent += done
        self._count(sent, octets, failed)

    def _count(self, sent: int, octets: int, failed: int) -> None:
        counters = self._counters
        counters.packets_out += sent
        counters.bytes_out += octets
        if failed:
            counters.drop_send_error += failed


class _Native:
    """The arrays :func:`voice_server.media.native` ``fan_send`` works on, for all targets."""

    __slots__ = ("_batch", "bufs", "count", "ctxs", "fan_send", "index", "msgs", "out", "protect",
                 "scratch")  # fmt: skip

    def __init__(
        self, lib: Any, targets: Sequence[Target], fast: list[FastSrtp], names: list[bytes]
    ) -> None:
        self.fan_send = lib.fan_send
        self.count = len(targets)
        self.protect = _ffi.cast("void *", PROTECT_ADDRESS)
        self._batch = MessageBatch([c.buffer_address() for c in fast], names)
        self.msgs = self._batch.messages
        self.ctxs = _ffi.new("void *[]", [_ffi.cast("void *", c.context_address()) for c in fast])
        self.bufs = _ffi.new("char *[]", [_ffi.cast("char *", c.buffer_address()) for c in fast])
        self.scratch = _ffi.new("struct mmsghdr[]", CHUNK)
        self.out = _ffi.new("long long[3]")
        #: member → its index (the talker's own copy is skipped)
        self.index: dict[object, int] = {t[0]: i for i, t in enumerate(targets)}
