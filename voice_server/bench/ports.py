"""Free ports on 127.0.0.1 for the servers that benchmarks and tests start.

A media port is used twice by the server: UDP for ICE/SRTP and, by default, TCP of the same
number for ICE-TCP. So a UDP port handed out here is also free for TCP at that moment, and no
number is handed out twice by one process (an HTTP port and a media port of the same number
would collide on TCP). Other processes (parallel test workers) draw from the kernel's ephemeral
range like any program."""

from __future__ import annotations

import socket

__all__ = ["free_port"]

HOST = "127.0.0.1"
_handed: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out on 127.0.0.1 (TCP, or UDP also free for TCP)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
            if port in _handed:
                continue
            if kind == socket.SOCK_DGRAM and not _tcp_free(port):
                continue
        _handed.add(port)
        return port
    raise OSError("no free port on 127.0.0.1")


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
        try:
            t.bind((HOST, port))
        except OSError:
            return False
    return True
