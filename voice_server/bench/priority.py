"""``voice-server bench priority``: how fast a supervisor cuts in when every slot is busy.

A server child process, three simulated staff members talking all the time (they hold the three
slots), one listener and one supervisor (role supervisor in its token), all real SRTP peers
(:mod:`voice_server.sim`). The supervisor talks ``cutins`` times (``talk_ms`` each, then silent
until the server's ``duck {"db": 0}`` reaches the listener). For each cut-in, from the
supervisor's first voiced packet (its send stamp):

- ``cutin.first_copy_ms``: to the arrival at the listener of the first packet carrying the
  supervisor's audio (its Opus frames differ from the staff's, so the listener tells them
  apart by payload);
- ``cutin.duck_ms``: to the arrival of ``duck {"db": -15}`` at the listener's WebSocket.

Both clocks are this process's ``perf_counter_ns`` (packet arrivals from the kernel's receive
timestamp). Reports the machine's load average before and after (``os.getloadavg``): the figures
mean little on a busy machine.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from voice_server.bench.serverproc import ServerChild
from voice_server.bench.stats import percentiles
from voice_server.media.errors import PacketError
from voice_server.media.rtp import payload_of
from voice_server.sim.audio import opus_frames
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

__all__ = ["run_priority_bench"]

STAFF = 3


class _Watch:
    """What the listener and the supervisor saw of one cut-in."""

    def __init__(self) -> None:
        self.onset_ns = -1  # the supervisor's first voiced packet of this cut-in
        self.first_copy_ns = -1
        self.duck_ns = -1
        self.unduck_ns = -1


def _hook_supervisor(sup: SimParticipant, watch: list[_Watch]) -> None:
    on_frame = sup.on_frame

    def paced(frame: int, now_ns: int, late: bool) -> None:
        if sup.talking and watch and watch[-1].onset_ns < 0:
            watch[-1].onset_ns = now_ns  # the send stamp of its first voiced packet
        on_frame(frame, now_ns, late)

    sup.on_frame = paced  # type: ignore[method-assign]


def _hook_listener(lis: SimParticipant, sup_frames: frozenset[bytes], watch: list[_Watch]) -> None:
    on_rtp = lis._on_rtp
    lis.verify_every = 1 << 30  # the listener's own check would decrypt: this hook does

    def seen(data: bytes, now: int) -> None:
        on_rtp(data, now)
        w = watch[-1] if watch else None
        rx = lis._rx
        if w is None or w.onset_ns < 0 or w.first_copy_ns >= 0 or rx is None:
            return
        plain = rx.unprotect(data)
        if plain is None:
            return
        try:
            payload = payload_of(plain)[2]
        except PacketError:
            return
        if payload in sup_frames:
            w.first_copy_ns = now

    lis._on_rtp = seen  # type: ignore[method-assign]
    count = lis._count

    def counted(raw: str | bytes) -> dict[str, Any]:
        msg = count(raw)
        if msg.get("type") == "duck" and watch:
            now = time.perf_counter_ns()
            if msg.get("db", 0) < 0 and watch[-1].duck_ns < 0:
                watch[-1].duck_ns = now
            elif msg.get("db") == 0:
                watch[-1].unduck_ns = now
        return msg

    lis._count = counted  # type: ignore[method-assign]


async def _wait(predicate: Any, within: float) -> bool:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True


async def _run(cutins: int, talk_ms: int, data_dir: Path) -> dict[str, Any]:
    server = ServerChild(data_dir, "ops")
    await server.start()
    group = SimGroup(server.ws_url, "ops", lambda i: server.token(f"s{i}"))
    watch: list[_Watch] = []
    try:
        for i in range(STAFF):
            await group.connect(group.participant(server.token(f"s{i}"), "ops", f"s{i}"))
        lis = group.participant(server.token("lis"), "ops", "lis")
        sup = group.participant(server.token("sup", role="supervisor"), "ops", "sup")
        sup.source.frames = opus_frames(bitrate=16_000)  # tell its audio apart by payload
        sup_frames = frozenset(sup.source.frames) - frozenset(group.frames)
        _hook_listener(lis, sup_frames, watch)
        _hook_supervisor(sup, watch)
        await group.connect(lis)
        await group.connect(sup)
        for p in group.participants[:STAFF]:  # the staff take the three slots, one by one
            p.talking = True
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        load_before = os.getloadavg()
        missed = 0
        for _ in range(cutins):
            w = _Watch()
            watch.append(w)
            sup.talking = True
            ok = await _wait(lambda w=w: w.first_copy_ns >= 0 and w.duck_ns >= 0, 5.0)
            await asyncio.sleep(talk_ms / 1000)
            sup.talking = False
            ok = await _wait(lambda w=w: w.unduck_ns >= 0, 5.0) and ok
            missed += not ok
            await asyncio.sleep(0.2)  # the pre-empted staff member takes its slot back
        load_after = os.getloadavg()
    finally:
        await group.close()
        await server.stop()
    first = [(w.first_copy_ns - w.onset_ns) / 1e6 for w in watch if w.first_copy_ns >= 0]
    duck = [(w.duck_ns - w.onset_ns) / 1e6 for w in watch if w.duck_ns >= 0 and w.onset_ns >= 0]
    if not first or not duck:
        raise RuntimeError("no cut-in was seen at the listener")
    return {
        "cutins": cutins,
        "missed": missed,
        "cutin": {
            "first_copy_ms": {k: round(v, 2) for k, v in percentiles(first, (50, 95)).items()},
            "duck_ms": {k: round(v, 2) for k, v in percentiles(duck, (50, 95)).items()},
        },
        "targets": {"first_copy_ms_p95": 20, "duck_ms_p95": 100},
        "loadavg": {"before": list(load_before), "after": list(load_after)},
        "cpus": os.cpu_count(),
    }


def run_priority_bench(cutins: int = 50, talk_ms: int = 400) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-priority-") as tmp:
        return asyncio.run(_run(cutins, talk_ms, Path(tmp)))


def format_summary(result: dict[str, Any]) -> str:
    c = result["cutin"]
    load = result["loadavg"]
    return (
        f"{result['cutins']} cut-ins ({result['missed']} missed): "
        f"first copy p50 {c['first_copy_ms']['p50']} ms, p95 {c['first_copy_ms']['p95']} ms "
        f"(target <= 20); duck p50 {c['duck_ms']['p50']} ms, p95 {c['duck_ms']['p95']} ms "
        f"(target <= 100); load {load['before'][0]:.2f} -> {load['after'][0]:.2f} "
        f"on {result['cpus']} CPUs"
    )
