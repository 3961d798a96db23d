"""Process limits a server or load generator with a thousand connections needs.

Each signaling WebSocket is a file descriptor on the server (media share one UDP port); a load
generator holds a WebSocket *and* a UDP socket per simulated participant. Distributions often
start processes with a soft ``RLIMIT_NOFILE`` of 1024: :func:`raise_fd_limit` lifts the soft
limit towards the hard one (which an unprivileged process may do). A UDP socket carrying a
thousand streams needs a large kernel buffer: :func:`size_buffer` asks for it, past the sysctl
cap with the privileged option.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import socket

__all__ = ["SO_RCVBUFFORCE", "SO_SNDBUFFORCE", "raise_fd_limit", "size_buffer"]

log = logging.getLogger(__name__)

SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33  # Linux: exceed net.core.*mem_max (needs CAP_NET_ADMIN)


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to ``min(wanted, hard)``; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit", extra={"wanted": target, "error": exc})
    return int(soft)


def size_buffer(sock: socket.socket, option: int, force: int, size: int) -> None:
    """Ask for ``size`` bytes of kernel buffer; past the sysctl cap, try the privileged option."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, option, size)
    if sock.getsockopt(socket.SOL_SOCKET, option) < size:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, size)
    got = sock.getsockopt(socket.SOL_SOCKET, option)
    if got < size:
        log.warning(
            "UDP socket buffer smaller than asked; raise net.core.rmem_max/wmem_max",
            extra={"option": option, "asked": size, "got": got},
        )
