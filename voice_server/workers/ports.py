"""The media port range of ``--workers N``: ``media_port + i`` for worker ``i``, each bound
alone (no ``SO_REUSEPORT``), checked free before anything starts."""

from __future__ import annotations

import errno
import socket

__all__ = ["check_media_ports", "media_ports"]


def media_ports(port: int, workers: int) -> list[int]:
    """Worker i's port (0: each worker takes an ephemeral port). Raises ValueError past 65535."""
    if port == 0:
        return [0] * workers
    last = port + workers - 1
    if last > 65535:
        raise ValueError(f"media ports {port}..{last} for {workers} workers run past 65535")
    return [port + i for i in range(workers)]


def check_media_ports(host: str, port: int, workers: int, tcp_port: int | None) -> None:
    """Raise OSError (one line) when a port of the range is taken: UDP ``port + i``, and TCP
    ``port + i`` when ICE-TCP follows the media port (``tcp_port`` None) or ``tcp_port + i``
    when it is set (0: no ICE-TCP)."""
    try:
        udp = media_ports(port, workers)
        tcp = [] if tcp_port == 0 else media_ports(port if tcp_port is None else tcp_port, workers)
    except ValueError as exc:
        raise OSError(str(exc)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind, name, ports in ((socket.SOCK_DGRAM, "UDP", udp), (socket.SOCK_STREAM, "TCP", tcp)):
        for i, p in enumerate(ports):
            if p == 0:
                continue
            with socket.socket(family, kind) as probe:
                if kind == socket.SOCK_STREAM:  # a listener in TIME_WAIT is no collision
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((host, p))
                except OSError as exc:
                    what = f"media {name} port {p} on {host} (worker {i} of {workers})"
                    if exc.errno == errno.EADDRINUSE:
                        raise OSError(f"{what} is already in use") from None
                    raise OSError(f"cannot bind {what}: {exc.strerror}") from None
