"""The machine's floor for forwarding: one SRTP protect and one loopback ``sendto`` per copy.

What no Python forwarder on this machine can go below, measured the way the server works: a
burst of ``listeners`` copies (the same RTP packet protected with each listener's own libsrtp
session, AES-GCM as negotiated by default, and sent from one non-blocking UDP socket to one
127.0.0.1 socket per listener), ``bursts_per_second`` bursts a second with the process idle in
between (the server's pattern: one burst per talker packet). The receiving sockets are not read
(datagrams that do not fit are dropped by the kernel, after the sender's work is done). Run
outside any event loop; reports CPU µs per copy (``time.process_time``), and the wall time of a
burst per copy.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from voice_server.media.srtp import SRTP_AEAD_AES_128_GCM, make_sessions
from voice_server.sim.audio import opus_frames, rtp_packet

__all__ = ["drain", "loopback_sockets", "measure_floor"]


def loopback_sockets(receivers: int) -> tuple[socket.socket, list[socket.socket]]:
    """A non-blocking sender and ``receivers`` non-blocking sockets bound on 127.0.0.1."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    out = []
    try:
        for _ in range(receivers):
            r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            out.append(r)
            r.bind(("127.0.0.1", 0))
            r.setblocking(False)
    except OSError:
        for r in [sender, *out]:
            r.close()
        raise
    return sender, out


def measure_floor(
    listeners: int = 200, bursts: int = 200, bursts_per_second: float = 100.0
) -> dict[str, Any]:
    """Protect + sendto per copy, paced like the server; see the module docstring."""
    sender, receivers = loopback_sockets(listeners)
    try:
        targets = [
            (make_sessions(SRTP_AEAD_AES_128_GCM, (os.urandom(28), os.urandom(28)))[1], addr)
            for addr in (r.getsockname() for r in receivers)
        ]
        packet = rtp_packet(
            payload_type=111,
            marker=False,
            seq=1,
            timestamp=0,
            ssrc=1,
            level=20,
            stamp_ns=0,
            payload=opus_frames()[0],
        )
        period = 1.0 / bursts_per_second
        busy_ns = 0
        copies = 0
        cpu = 0.0
        for k in range(bursts):
            c0 = time.process_time()
            t0 = time.perf_counter_ns()
            for session, addr in targets:
                try:
                    sender.sendto(session.protect(packet), addr)
                except OSError:
                    continue
                copies += 1
            busy_ns += time.perf_counter_ns() - t0
            cpu += time.process_time() - c0
            if k % 10 == 9:
                drain(receivers)
            time.sleep(max(0.0, period - (time.perf_counter_ns() - t0) / 1e9))
    finally:
        sender.close()
        for r in receivers:
            r.close()
    return {
        "listeners": listeners,
        "bursts_per_second": bursts_per_second,
        "cpu_us_per_packet": round(cpu * 1e6 / max(1, copies), 3),
        "wall_us_per_packet": round(busy_ns / 1e3 / max(1, copies), 3),
    }


def drain(receivers: list[socket.socket]) -> None:
    for r in receivers:
        try:
            while True:
                r.recv(2048)
        except OSError:
            continue
