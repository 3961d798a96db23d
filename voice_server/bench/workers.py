"""``voice-server bench workers``: what a second media worker costs, and what the relay adds.

The real server runs twice at the same load (:mod:`serverproc`), first with ``--workers 1`` then
``--workers 2`` (``workers_placement = round-robin``: every channel's members split over both
workers): ``channels`` channels of ``members`` simulated participants (:mod:`voice_server.sim`,
in this process), one talker each. After ``warmup`` s, a window of ``seconds``:

- ``cpu_us_per_copy``: the CPU of every server process (the parent from ``/proc``, each worker
  from its own ``voice_media_worker_cpu_seconds_total``) ÷ copies forwarded
  (Δ ``voice_media_packets_out_total``, the workers' counters added up);
- ``split``: each worker's share of the copies and its CPU;
- ``relay.overhead`` = two workers' ``cpu_us_per_copy`` ÷ one worker's − 1 (target ≤ 10 %);
- ``relay.added_ms``: the inter-process hop, the sender's send time to the receiving worker's
  receipt (Δ ``voice_relay_added_seconds``; target p99 ≤ 2 ms).

Both runs are at the light load of the issue by default (2 channels × 20 members); ``--members``
raises it. A *capacity ratio* (participants held at p99 ≤ 5 ms, loss 0, one worker vs two) is
measured only where the generator has cores of its own: with fewer than ``CAPACITY_CORES``
usable cores the result says why it is not (README "Benchmarks").
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voice_server.bench import prom
from voice_server.bench.capacity import MIN_CORES, CapacityPlan, measure_capacity
from voice_server.bench.procstat import CpuMeter, read_machine_busy_seconds
from voice_server.bench.serverproc import ServerChild
from voice_server.bench.wakefloor import measure_wake_floor
from voice_server.config import usable_cores
from voice_server.sim.group import SimGroup

__all__ = ["CAPACITY_CORES", "TARGETS", "format_summary", "run_workers_bench"]

TARGETS = {"overhead": 0.10, "added_p99_ms": 2.0}
CAPACITY_CORES = MIN_CORES
CAPACITY_MODES = ("auto", "on", "off")
CONNECT_SECONDS = 120.0


def _channels(n: int) -> list[str]:
    return [f"bench-{i}" for i in range(n)]


async def _connected(server: ServerChild, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while prom.value(prom.parse(await server.metrics()), "voice_media_dtls_handshakes_total") < (
        count
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} participants connected in {within} s")
        await asyncio.sleep(0.2)


def _token_for(token: str) -> Callable[[int], str]:
    return lambda _i: token


def _worker_values(samples: prom.Samples, name: str, workers: int) -> list[float]:
    return [prom.value(samples, name, worker=str(i)) for i in range(workers)]


async def _run(
    workers: int, channels: int, members: int, seconds: float, warmup: float
) -> dict[str, Any]:
    names = _channels(channels)
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        server = ServerChild(
            Path(tmp),
            names[0],
            more_channels=names[1:],
            args=["--workers", str(workers)],
            env={"VOICE_WORKERS_PLACEMENT": "round-robin"},
        )
        await server.start()
        groups: list[SimGroup] = []
        try:
            for ch in names:
                group = SimGroup(server.ws_url, ch, _token_for(server.token(f"{ch}-m", channel=ch)))
                groups.append(group)
                for _ in range(members):  # one by one: round-robin alternates the workers
                    await group.add(1, within=CONNECT_SECONDS)
            await _connected(server, channels * members, CONNECT_SECONDS)
            for group in groups:
                group.participants[0].talking = True
            await asyncio.sleep(warmup)
            result = await _window(server, workers, seconds)
            for group in groups:
                group.participants[0].talking = False
        finally:
            for group in groups:
                await group.close()
            await server.stop()
    return result


async def _window(server: ServerChild, workers: int, seconds: float) -> dict[str, Any]:
    m0 = prom.parse(await server.metrics())
    parent = CpuMeter(server.pid)
    own = CpuMeter()
    busy0 = read_machine_busy_seconds()
    parent.start()
    own.start()
    await asyncio.sleep(seconds)
    parent_cpu = parent.stop()
    gen_cpu = own.stop()
    machine = (read_machine_busy_seconds() - busy0) / parent_cpu.wall_seconds
    m1 = prom.parse(await server.metrics())
    copies = prom.value(m1, "voice_media_packets_out_total") - prom.value(
        m0, "voice_media_packets_out_total"
    )
    if copies <= 0:
        raise RuntimeError("the server forwarded nothing in the measurement window")
    wall = parent_cpu.wall_seconds
    cpu = parent_cpu.cpu_seconds
    split: list[dict[str, Any]] = []
    if workers > 1:
        name = "voice_media_worker_cpu_seconds_total"
        cpus = [b - a for a, b in zip(_worker_values(m0, name, workers),
                                      _worker_values(m1, name, workers), strict=True)]  # fmt: skip
        name = "voice_media_worker_packets_out_total"
        outs = [b - a for a, b in zip(_worker_values(m0, name, workers),
                                      _worker_values(m1, name, workers), strict=True)]  # fmt: skip
        cpu += sum(cpus)
        split = [
            {
                "worker": i,
                "copies": round(outs[i]),
                "copies_share": round(outs[i] / copies, 3),
                "cpu_cores": round(cpus[i] / wall, 4),
            }
            for i in range(workers)
        ]
    received = "voice_relay_datagrams_received_total"
    relayed = sum(_worker_values(m1, received, workers)) - sum(
        _worker_values(m0, received, workers)
    )
    hop = prom.histogram_delta(m0, m1, "voice_relay_added_seconds") if workers > 1 else None
    return {
        "workers": workers,
        "window_seconds": round(wall, 3),
        "copies": round(copies),
        "copies_per_second": round(copies / wall, 1),
        "cpu_us_per_copy": round(cpu * 1e6 / copies, 3),
        "relayed_per_second": round(relayed / wall, 1),
        "server_cpu_cores": round(cpu / wall, 4),
        "parent_cpu_cores": round(parent_cpu.cores, 4),
        "split": split,
        "relay_added_ms": _ms(hop) if hop is not None and hop.count else None,
        "generator_cpu_cores": round(gen_cpu.cores, 4),
        "machine_busy_cores": round(machine, 3),
    }


def _ms(h: Any) -> dict[str, Any]:
    out = h.summary_ms((50, 99))
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def _floor(one: dict[str, Any], two: dict[str, Any], seconds: float) -> dict[str, Any] | None:
    """The operating system's share of the overhead (:mod:`wakefloor`): one hand-over between
    processes per datagram the two-worker run relayed, at its rate, as a share of one worker's
    CPU at the same load; ``overhead_above_floor`` is what our relay adds beyond it."""
    rate = float(two["relayed_per_second"])
    if rate < 1.0:
        return None
    floor = measure_wake_floor(rate, seconds)
    share = floor["cpu_cores"] / one["server_cpu_cores"] if one["server_cpu_cores"] else None
    return {**floor, "overhead_share": None if share is None else round(share, 4)}


def run_workers_bench(
    channels: int = 2,
    members: int = 20,
    seconds: float = 10.0,
    warmup: float = 2.0,
    wake_floor: bool = True,
    capacity_mode: str = "auto",
    capacity_plan: CapacityPlan | None = None,
) -> dict[str, Any]:
    """Both runs, then the comparison. Must be called with no event loop running."""
    if channels < 1 or members < 2 or seconds <= 0 or warmup < 0:
        raise ValueError("need channels >= 1, members >= 2, seconds > 0, warmup >= 0")
    if capacity_mode not in CAPACITY_MODES:
        raise ValueError(f"capacity must be one of {', '.join(CAPACITY_MODES)}")
    one = asyncio.run(_run(1, channels, members, seconds, warmup))
    two = asyncio.run(_run(2, channels, members, seconds, warmup))
    overhead = round(two["cpu_us_per_copy"] / one["cpu_us_per_copy"] - 1, 4)
    floor = _floor(one, two, seconds) if wake_floor else None
    added = two["relay_added_ms"]
    cores = usable_cores()
    capacity: dict[str, Any]
    if capacity_mode == "on" or (capacity_mode == "auto" and cores >= CAPACITY_CORES):
        capacity = measure_capacity(capacity_plan or CapacityPlan(), force=True)
    else:
        capacity = {
            "measured": False,
            "usable_cores": cores,
            "reason": (
                f"{cores} usable cores: the load generator alone takes about a core, so the "
                f"server's workers cannot have cores of their own (needs >= {CAPACITY_CORES}; "
                "README Benchmarks: run it on ../shared/device/'s 16-core machine)"
                if cores < CAPACITY_CORES
                else "not asked (--capacity off)"
            ),
        }
    return {
        "load": {"channels": channels, "members": members, "talkers": channels},
        "one": one,
        "two": two,
        "relay": {
            "overhead": overhead,
            "added_ms": added,
            "wake_floor": floor,
            "overhead_above_floor": (
                None
                if floor is None or floor["overhead_share"] is None
                else round(overhead - floor["overhead_share"], 4)
            ),
        },
        "targets": TARGETS,
        "meets_targets": {
            "overhead": overhead <= TARGETS["overhead"],
            "added_p99_ms": None if added is None else added["p99"] <= TARGETS["added_p99_ms"],
        },
        "capacity": capacity,
        "machine": {"cpus": os.cpu_count(), "loadavg_1min": os.getloadavg()[0]},
    }


def format_summary(result: dict[str, Any]) -> str:
    one, two, relay = result["one"], result["two"], result["relay"]
    added = relay["added_ms"] or {}
    lines = [
        f"load: {result['load']['channels']} channels x {result['load']['members']} members, "
        "one talker each",
        f"1 worker : {one['cpu_us_per_copy']} us/copy, {one['server_cpu_cores']} cores",
        f"2 workers: {two['cpu_us_per_copy']} us/copy, {two['server_cpu_cores']} cores "
        f"(parent {two['parent_cpu_cores']}), split "
        + ", ".join(f"w{s['worker']} {s['copies_share']:.0%}" for s in two["split"]),
        f"relay overhead {relay['overhead']:+.1%} (target <= 10 %), hop p50 "
        f"{added.get('p50')} ms p99 {added.get('p99')} ms (target p99 <= 2 ms)",
        *_floor_lines(relay),
        *_capacity_lines(result["capacity"]),
    ]
    return "\n".join(lines)


def _floor_lines(relay: dict[str, Any]) -> list[str]:
    floor = relay.get("wake_floor")
    if not floor or floor["overhead_share"] is None:
        return []
    return [
        f"wake floor: {floor['us_per_datagram']} us per datagram handed to another process "
        f"(send {floor['send_us']}, receive {floor['receive_us']}) at {floor['rate']}/s = "
        f"{floor['overhead_share']:+.1%} of one worker's CPU; relay overhead above it "
        f"{relay['overhead_above_floor']:+.1%}"
    ]


def _capacity_lines(capacity: dict[str, Any]) -> list[str]:
    if not capacity.get("measured"):
        return [f"capacity ratio: not measured: {capacity['reason']}"]
    lines = []
    for run in (capacity["one"], capacity["two"]):
        steps = ", ".join(
            f"{s['participants']} {'held' if s['held'] else 'not held'} "
            f"(p99 {s['added_p99_ms']} ms)"
            for s in run["steps"]
        )
        stopped = f"; stopped: {run['stopped']}" if run["stopped"] else ""
        lines.append(
            f"capacity, {run['workers']} worker(s) on cores {run['server_cores']}: "
            f"{run['capacity']} participants held [{steps}]{stopped}"
        )
    forced = " (forced on too few cores: not a measurement)" if capacity["forced"] else ""
    lines.append(f"capacity ratio two/one: {capacity['ratio']}{forced}")
    return lines
