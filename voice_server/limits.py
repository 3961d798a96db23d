"""Process limits a server or load generator with a thousand connections needs.

Each signaling WebSocket is a file descriptor on the server (media share one UDP port); a load
generator holds a WebSocket *and* a UDP socket per simulated participant. Distributions often
start processes with a soft ``RLIMIT_NOFILE`` of 1024: :func:`raise_fd_limit` lifts the soft
limit towards the hard one (which an unprivileged process may do).
"""

from __future__ import annotations

import logging
import resource

__all__ = ["raise_fd_limit"]

log = logging.getLogger(__name__)


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
