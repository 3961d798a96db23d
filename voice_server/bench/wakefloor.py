"""What the operating system charges to hand one datagram to another process: the relay's floor.

A channel split over two media workers costs each forwarded packet one more hand-over between
processes than one worker does: a ``sendto`` on loopback by one worker (which, on loopback, runs
the receiving side of the network stack and wakes the receiver) and a wake-up of the other
(``epoll`` returns, the loop dispatches, ``recv``). No relay design that keeps a process per core
avoids it (a pipe, a shared ring with a futex or an eventfd wake the receiver all the same).
``bench workers`` measures it here at the rate its two-worker run relayed, so its result says
how much of the relay's overhead is this floor and how much is ours.

Two fresh processes on uvloop (the loop the workers run on), both started before a shared start
time on the system-wide monotonic clock: a receiver reading a UDP socket as the relay does
(``add_reader``, ``recv`` until it would block) and a sender pacing ``rate`` datagrams a second
from a timer. Quiet and busy slots of 1 s alternate for ``seconds`` each: in a quiet one the
sender's timer fires without sending (its wake-ups would be the talker's packet in a worker, paid
with one worker too), in a busy one it sends. The floor is both processes' extra CPU
(``time.process_time``) in the busy slots ÷ datagrams received.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from multiprocessing.connection import Connection
from typing import Any

from voice_server.loops import loop_factory

__all__ = ["measure_wake_floor"]

PAYLOAD_BYTES = 200  # a relay datagram of an Opus frame: header, tag, ~120 bytes of audio
START_DELAY_S = 3.0  # both processes import and start within this


async def _until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.monotonic()))


SLOT_S = 1.0  # quiet and busy slots alternate, so drift on a shared machine hits both alike


def _slots(seconds: float) -> int:
    return max(1, round(seconds / SLOT_S))


async def _receive(conn: Connection, start: float, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    conn.send(sock.getsockname()[1])
    count = 0

    def readable() -> None:
        nonlocal count
        for _ in range(64):
            try:
                sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            count += 1

    asyncio.get_running_loop().add_reader(sock.fileno(), readable)
    slot = seconds / _slots(seconds)
    cpu, received = [0.0, 0.0], 0
    await _until(start)
    for k in range(2 * _slots(seconds)):
        c0, n0 = time.process_time(), count
        await _until(start + (k + 1) * slot)
        cpu[k % 2] += time.process_time() - c0
        if k % 2:
            received += count - n0
    sock.close()
    conn.send({"quiet_cpu": cpu[0], "busy_cpu": cpu[1], "received": received})


async def _send(conn: Connection, port: int, rate: float, start: float, seconds: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    data, address = os.urandom(PAYLOAD_BYTES), ("127.0.0.1", port)
    period = 1.0 / rate
    slot = seconds / _slots(seconds)
    cpu = [0.0, 0.0]
    await _until(start)
    t = start
    for k in range(2 * _slots(seconds)):
        busy = k % 2 == 1
        end = start + (k + 1) * slot
        c0 = time.process_time()
        while True:
            t += period
            if t >= end:
                t -= period
                break
            await _until(t)
            if busy:
                try:
                    sock.sendto(data, address)
                except OSError:
                    pass  # counted by the receiver's shortfall
        await _until(end)
        cpu[k % 2] += time.process_time() - c0
    sock.close()
    conn.send({"quiet_cpu": cpu[0], "busy_cpu": cpu[1]})


def _receiver_main(conn: Connection, start: float, seconds: float) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_receive(conn, start, seconds))


def _sender_main(conn: Connection, port: int, rate: float, start: float, seconds: float) -> None:
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_send(conn, port, rate, start, seconds))


def measure_wake_floor(rate: float, seconds: float = 10.0) -> dict[str, Any]:
    """The floor at ``rate`` datagrams a second (see the module docstring): CPU µs per
    datagram handed over, and each side's share. Takes ``2 × seconds`` and a few seconds more.
    Raises ValueError for a rate or window that cannot be paced, RuntimeError when a process
    fails or nothing arrives."""
    if not 1.0 <= rate <= 20_000.0 or seconds <= 0:
        raise ValueError("need 1 <= rate <= 20000 datagrams a second and seconds > 0")
    ctx = multiprocessing.get_context("spawn")
    start = time.monotonic() + START_DELAY_S
    r_parent, r_child = ctx.Pipe()
    s_parent, s_child = ctx.Pipe()
    receiver = ctx.Process(target=_receiver_main, args=(r_child, start, seconds), daemon=True)
    receiver.start()
    sender = None
    try:
        if not r_parent.poll(START_DELAY_S):
            raise RuntimeError("the floor's receiver did not start")
        port = int(r_parent.recv())
        sender = ctx.Process(
            target=_sender_main, args=(s_child, port, rate, start, seconds), daemon=True
        )
        sender.start()
        within = START_DELAY_S + 2 * seconds + 10.0
        if not (r_parent.poll(within) and s_parent.poll(within)):
            raise RuntimeError("the floor's processes did not report")
        got, sent = r_parent.recv(), s_parent.recv()
    finally:
        for proc in (receiver, sender):
            if proc is not None:
                proc.join(timeout=5)
                if proc.is_alive():
                    proc.kill()
    received = int(got["received"])
    if received <= 0:
        raise RuntimeError("no datagram reached the floor's receiver")
    send_s = max(0.0, sent["busy_cpu"] - sent["quiet_cpu"])
    receive_s = max(0.0, got["busy_cpu"] - got["quiet_cpu"])
    return {
        "rate": rate,
        "window_seconds": seconds,
        "received": received,
        "us_per_datagram": round((send_s + receive_s) * 1e6 / received, 2),
        "send_us": round(send_s * 1e6 / received, 2),
        "receive_us": round(receive_s * 1e6 / received, 2),
        "cpu_cores": round((send_s + receive_s) / seconds, 5),
    }
