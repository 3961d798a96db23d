"""Kernel counters of UDP sockets from ``/proc/net/udp`` and ``/proc/net/udp6``.

Each line is one socket: ``local_address`` is ``HEXIP:HEXPORT``, ``tx_queue:rx_queue`` the bytes
queued, and the last column ``drops`` the datagrams the kernel dropped on receive (buffer full)
since the socket was created. The files list every socket of the network namespace, so one
process can read the counters of another's sockets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["UdpSocketStat", "read_udp_sockets", "total_drops"]


@dataclass(frozen=True, slots=True)
class UdpSocketStat:
    port: int
    rx_queue: int
    drops: int


def read_udp_sockets(
    paths: Iterable[str] = ("/proc/net/udp", "/proc/net/udp6"),
) -> dict[int, UdpSocketStat]:
    """Local port → counters of every UDP socket (the first socket wins if a port repeats)."""
    out: dict[int, UdpSocketStat] = {}
    for path in paths:
        try:
            with open(path, encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 13:
                continue
            port = int(parts[1].rsplit(":", 1)[1], 16)
            rx_queue = int(parts[4].split(":")[1], 16)
            out.setdefault(port, UdpSocketStat(port, rx_queue, int(parts[-1])))
    return out


def total_drops(stats: dict[int, UdpSocketStat], ports: Iterable[int]) -> int:
    """Sum of ``drops`` of the sockets bound to ``ports`` (ports not found count 0)."""
    return sum(stats[p].drops for p in ports if p in stats)
