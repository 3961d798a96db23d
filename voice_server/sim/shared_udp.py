"""Many simulated participants behind one UDP socket (Linux): the load generator's receive path.

The server tells participants apart by their source address, so each needs its own; with one
socket each, a generator pays a system call, a poll event and several Python calls for every
datagram (~6–8 µs here at 100 datagrams/s per participant). :class:`SharedUdp` gives each
participant its own loopback *address* instead (``127.1.x.y``, all on the same port) on one
socket bound to the wildcard address:

- sending: ``sendmsg`` with an ``IP_PKTINFO`` control message naming the participant's source
  address (allowed for any local address: all of 127.0.0.0/8 is);
- receiving: one ``recvmmsg(2)`` (cffi, no compiler) reads up to :data:`BATCH` datagrams, each
  with ``IP_PKTINFO`` (its destination address: which participant) and ``SO_TIMESTAMPNS`` (when
  the kernel received it, on the ``perf_counter_ns`` clock as in :mod:`~voice_server.sim.rxpoll`);
  ~4.5 µs a datagram with the participant's own work included.

:meth:`SharedUdp.endpoint` returns a :class:`SharedEndpoint` that looks like a connected socket
to its participant (``send``, ``getsockname``, ``close``); :meth:`SharedUdp.drain` is called
on the owner's clock (the pacer's tick) and hands each datagram to its endpoint's handler.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from voice_server.limits import SO_RCVBUFFORCE, size_buffer
from voice_server.media.rxtime import SO_TIMESTAMPNS as _SO_TIMESTAMPNS
from voice_server.media.sendmany import AVAILABLE as MMSG_AVAILABLE
from voice_server.media.sendmany import ffi as _ffi
from voice_server.media.sendmany import recvmmsg

__all__ = ["AVAILABLE", "SharedEndpoint", "SharedUdp"]

BATCH = 256
BUF = 2048
CTL = 64
RCVBUF = 32 << 20
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
# SO_TIMESTAMPNS then IP_PKTINFO, as Linux writes them: (len, level, type, sec, nsec) and
# (len, level, type, ifindex, spec_dst, addr)
_CONTROL = struct.Struct("=QiiqqQii4x4s4s")
_EXPECTED = (socket.SOL_SOCKET, _SO_TIMESTAMPNS, socket.IPPROTO_IP, _IP_PKTINFO)
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns

_recvmmsg: Any = recvmmsg
AVAILABLE = MMSG_AVAILABLE

Handler = Callable[[bytes, int], None]  # (datagram, arrival on the perf_counter_ns clock)


class SharedEndpoint:
    """One participant's view of the shared socket: a connected-socket look-alike."""

    __slots__ = ("_owner", "_pktinfo", "handler", "ip", "packed", "remote")

    def __init__(self, owner: SharedUdp, ip: str, remote: tuple[str, int], handler: Handler):
        self._owner = owner
        self.ip = ip
        self.packed = socket.inet_aton(ip)
        self.remote = remote
        self.handler = handler
        # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }: the source
        self._pktinfo = [(socket.IPPROTO_IP, _IP_PKTINFO, struct.pack("=i4s4x", 0, self.packed))]

    def send(self, data: bytes) -> None:
        """Send from this endpoint's address to the server (raises OSError like a socket)."""
        self._owner.sock.sendmsg([data], self._pktinfo, 0, self.remote)

    def getsockname(self) -> tuple[str, int]:
        return self.ip, self._owner.port

    def close(self) -> None:
        self._owner.release(self)


class SharedUdp:
    """One socket for many participants (see the module docstring)."""

    def __init__(self, *, net: int = 1) -> None:
        if not AVAILABLE:
            raise OSError("recvmmsg is not available here")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            size_buffer(self.sock, socket.SO_RCVBUF, SO_RCVBUFFORCE, RCVBUF)
            self.sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self.sock.setblocking(False)
            self.sock.bind(("0.0.0.0", 0))
        except OSError:
            self.sock.close()
            raise
        self.port = int(self.sock.getsockname()[1])
        self._fd = self.sock.fileno()
        self._net = net
        self._next = 1
        self._free: list[str] = []
        self._by_addr: dict[bytes, SharedEndpoint] = {}
        self._msgs: Any = _ffi.new("struct mmsghdr[]", BATCH)
        self._iovs: Any = _ffi.new("struct iovec[]", BATCH)
        self._data: Any = _ffi.new("char[]", BATCH * BUF)
        self._ctl: Any = _ffi.new("char[]", BATCH * CTL)
        for i in range(BATCH):
            self._iovs[i].iov_base = self._data + i * BUF
            self._iovs[i].iov_len = BUF
            hdr = self._msgs[i].msg_hdr
            hdr.msg_iov = self._iovs + i
            hdr.msg_iovlen = 1
            hdr.msg_control = self._ctl + i * CTL
            hdr.msg_controllen = CTL
        self._data_view = _ffi.buffer(self._data)
        self._ctl_view = _ffi.buffer(self._ctl)
        #: datagrams read, datagrams for no endpoint (late, after a participant left)
        self.received = 0
        self.unknown = 0

    def endpoint(self, remote: tuple[str, int], handler: Handler) -> SharedEndpoint:
        """A new participant address (``127.<net>.x.y``) talking to ``remote``."""
        if self._free:
            ip = self._free.pop()
        else:
            k = self._next
            if k >= 65535:
                raise OSError("no loopback address left for another participant")
            self._next += 1
            ip = f"127.{self._net}.{k >> 8}.{k & 0xFF}"
        endpoint = SharedEndpoint(self, ip, remote, handler)
        self._by_addr[endpoint.packed] = endpoint
        return endpoint

    def release(self, endpoint: SharedEndpoint) -> None:
        if self._by_addr.get(endpoint.packed) is endpoint:
            del self._by_addr[endpoint.packed]
            self._free.append(endpoint.ip)

    def __len__(self) -> int:
        return len(self._by_addr)

    def drain(self) -> None:
        """Read and dispatch what has arrived (the pacer's ``after_tick`` callback)."""
        self.drain_count()

    def drain_count(self, rounds: int = 64) -> int:
        """Read and dispatch what has arrived (at most ``rounds`` × :data:`BATCH` datagrams);
        returns how many were read."""
        msgs = self._msgs
        data = self._data_view
        ctl = self._ctl_view
        by_addr = self._by_addr
        unpack = _CONTROL.unpack_from
        total = 0
        for _ in range(rounds):
            n = _recvmmsg(self._fd, msgs, BATCH, socket.MSG_DONTWAIT, _ffi.NULL)
            if n <= 0:
                break
            total += n
            now = _perf_ns()
            wall = _time_ns()
            for i in range(n):
                hdr = msgs[i].msg_hdr
                hdr.msg_controllen = CTL  # the kernel shortened it: room for the next read
                _l1, lv1, ty1, sec, nsec, _l2, lv2, ty2, _spec, dst = unpack(ctl, i * CTL)
                if (lv1, ty1, lv2, ty2) != _EXPECTED:
                    self.unknown += 1  # no timestamp or destination: cannot be attributed
                    continue
                endpoint = by_addr.get(dst)
                if endpoint is None:
                    self.unknown += 1
                    continue
                start = i * BUF
                ago = wall - (sec * 1_000_000_000 + nsec)
                endpoint.handler(data[start : start + msgs[i].msg_len], now - max(ago, 0))
            if n < BATCH:
                break
        self.received += total
        return total

    def close(self) -> None:
        self._by_addr.clear()
        self.sock.close()
