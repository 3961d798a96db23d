"""``sendmmsg(2)``: many datagrams from one UDP socket in one system call (Linux).

A router forwards each packet to every listener: one SRTP protect and one datagram per listener.
With ``socket.sendto`` each datagram is a Python call and a system call (~1 µs of the ~5 µs a
copy costs here besides the kernel's own work). :class:`MessageBatch` prebuilds a
``struct mmsghdr`` array for a fixed list of destinations, each datagram's bytes living in a
buffer that stays put (the listener's libsrtp buffer, protected in place); per packet only the
lengths are set and one ``sendmmsg`` sends a whole range.

cffi in ABI mode on the C library (no compiler needed); the struct layouts are the Linux ones
(x86-64 and aarch64 alike). :data:`AVAILABLE` is false elsewhere, and callers use ``sendto``.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from cffi import FFI

__all__ = ["AVAILABLE", "MessageBatch", "ffi", "recvmmsg", "sockaddr"]

ffi = _ffi = FFI()
_ffi.cdef(
    """
    struct iovec { void *iov_base; size_t iov_len; };
    struct msghdr {
        void *msg_name; unsigned int msg_namelen;
        struct iovec *msg_iov; size_t msg_iovlen;
        void *msg_control; size_t msg_controllen;
        int msg_flags;
    };
    struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
    int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
    int recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout);
    """
)
try:
    _libc: Any = _ffi.dlopen(None)
    _sendmmsg: Any = _libc.sendmmsg
    recvmmsg: Any = _libc.recvmmsg  # the load generator's receive side (sim.shared_udp)
    AVAILABLE = _ffi.sizeof("struct mmsghdr") == 64 and hasattr(socket, "MSG_DONTWAIT")
except (OSError, AttributeError):  # pragma: no cover - not Linux
    AVAILABLE = False
    recvmmsg = None


def sockaddr(addr: tuple[str, int]) -> bytes | None:
    """``struct sockaddr_in``/``sockaddr_in6`` for ``(host, port)``; None when not packable."""
    host, port = addr[0], addr[1]
    try:
        if ":" in host:
            return struct.pack("=H", socket.AF_INET6) + struct.pack(
                "!HI16sI", port, 0, socket.inet_pton(socket.AF_INET6, host), 0
            )
        return (
            struct.pack("=H", socket.AF_INET)
            + struct.pack("!H4s", port, socket.inet_aton(host))
            + bytes(8)
        )
    except (OSError, ValueError, struct.error):
        return None


class MessageBatch:
    """One ``mmsghdr`` per destination, each pointing at a fixed buffer (``buffer_addresses``,
    integer addresses of memory the caller keeps alive) and a packed socket address."""

    __slots__ = ("_iovs", "_keep", "_msgs", "count")

    def __init__(self, buffer_addresses: list[int], names: list[bytes]) -> None:
        n = len(names)
        self.count = n
        self._msgs: Any = _ffi.new("struct mmsghdr[]", max(1, n))
        self._iovs: Any = _ffi.new("struct iovec[]", max(1, n))
        self._keep = [_ffi.new("char[]", name) for name in names]
        for i, (address, name) in enumerate(zip(buffer_addresses, names, strict=True)):
            hdr = self._msgs[i].msg_hdr
            hdr.msg_name = self._keep[i]
            hdr.msg_namelen = len(name)
            hdr.msg_iov = self._iovs + i
            hdr.msg_iovlen = 1
            self._iovs[i].iov_base = _ffi.cast("void *", address)

    @property
    def messages(self) -> Any:
        """The ``struct mmsghdr`` array (alive with this batch)."""
        return self._msgs

    def iov(self, i: int) -> Any:
        """Datagram ``i``'s ``struct iovec``: set its ``iov_len`` before sending."""
        return self._iovs[i]

    def send(self, fd: int, start: int, stop: int) -> tuple[int, int, int]:
        """Send datagrams ``start`` … ``stop - 1``: returns (sent, failed, bytes not sent). A
        datagram the kernel refuses (full buffer, …) is skipped and counted; the rest still go."""
        sent = failed = lost = 0
        while start < stop:
            n = _sendmmsg(fd, self._msgs + start, stop - start, socket.MSG_DONTWAIT)
            if n < 0:
                n = 0
            sent += n
            start += n
            if start < stop:  # datagram ``start`` failed: skip it
                failed += 1
                lost += int(self._iovs[start].iov_len)
                start += 1
        return sent, failed, lost
