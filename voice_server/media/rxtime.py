"""Kernel receive timestamps: when a datagram arrived, not when a busy process read it.

:func:`enable_timestamps` sets ``SO_TIMESTAMPNS`` on a UDP socket; :func:`arrival_ns` turns the
timestamp in a ``recvmsg`` result's ancillary data into the ``time.perf_counter_ns`` clock
(now, minus how long ago the kernel queued the datagram, both read on ``CLOCK_REALTIME``).
The server starts its forwarding-time clock there, so time a datagram spent queued in the media
socket while the event loop was busy counts as time the server added; the load generator uses
it so its jitter and latency are those of the path, not of its own scheduling.

When the first socket of the machine asks for timestamps, Linux switches stamping on a moment
later (a deferred static key): datagrams received before that are stamped when read. The server
enables it at start-up, so only its first datagrams can be affected.
"""

from __future__ import annotations

import socket
import struct
import time

__all__ = ["ANC_SIZE", "SO_TIMESTAMPNS", "arrival_ns", "enable_timestamps"]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; also SCM_TIMESTAMPNS
ANC_SIZE = 64  # room for one control message of a timespec
_TIMESPEC = struct.Struct("@qq")
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns
_SOL_SOCKET = socket.SOL_SOCKET


def enable_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each received datagram (``SO_TIMESTAMPNS``)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def arrival_ns(ancdata: list[tuple[int, int, bytes]]) -> int:
    """When the datagram whose ``recvmsg`` ancillary data is ``ancdata`` arrived, on the
    ``perf_counter_ns`` clock (now when the data holds no timestamp)."""
    now = _perf_ns()
    if ancdata:
        level, kind, raw = ancdata[0]  # the only control message asked for
        if kind == SO_TIMESTAMPNS and level == _SOL_SOCKET and len(raw) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(raw)
            ago = _time_ns() - (sec * 1_000_000_000 + nsec)
            return now - ago if ago > 0 else now
    return now
