"""``voice-server bench console``: what the dispatcher console costs (not a timed test).

One real ``voice-server serve`` child process; every participant is a simulated SRTP peer
(:mod:`voice_server.sim`) in this process.

(a) **All-call vs plain forwarding at the same copies per packet, in the same run.** ``channels``
channels of ``members`` listeners each, and one more channel (``big``) with ``channels ×
members`` listeners and one staff talker. In alternating windows (``rounds`` of each, the same
server process, nothing else talking): the staff talker talks in ``big`` (*plain*: one packet in,
``channels × members`` copies out), or a supervisor's console talks into every one of the
``channels`` at once (*all-call*: the same copies per packet, through ``channels`` routers).
Per window, from two scrapes of ``/metrics`` and ``/proc``: server CPU (utime + stime) ÷
forwarded copies (Δ ``voice_media_packets_out_total``), and the server's added latency (Δ of
the ``voice_media_forward_seconds`` histogram: socket read to each copy's ``sendto``); figures
are the medians over the windows, the ratio all-call ÷ plain per copy (target ≤ 1.1) and p99
all-call − plain (target ≤ +1 ms).

(b) **Monitor → audio.** ``monitors`` more channels, each with one talker talking all the time;
the console (whose own channel is silent) sends ``monitor`` for one of them and the clock runs
until the first RTP packet of that channel reaches it (after the renegotiation offer and its
answer: the new slot m-lines); then ``unmonitor`` and the next. p50/p95 (target p95 ≤ 1 s).
This is the server and protocol part; a browser adds its jitter buffer (~60 ms) and playout.

Reports the machine's load average before and after (``os.getloadavg``).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from voice_server.bench import prom
from voice_server.bench.procstat import read_cpu_times
from voice_server.bench.serverproc import ServerChild
from voice_server.bench.stats import percentiles
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

__all__ = ["format_summary", "run_console_bench"]

HIST = "voice_media_forward_seconds"
BIG = "big"
TARGETS = {"allcall_p99_added_ms": 1.0, "cpu_per_copy_ratio": 1.1, "monitor_to_audio_p95_ms": 1000}


async def _wait(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def _send(p: SimParticipant, **msg: Any) -> None:
    assert p._ws is not None
    await p._ws.send(json.dumps({"v": 1, **msg}))


async def _window(server: ServerChild, talker: SimParticipant, seconds: float) -> dict[str, float]:
    """One measured window while ``talker`` talks (after a second of settling)."""
    talker.talking = True
    await asyncio.sleep(1.0)
    m0 = prom.parse(await server.metrics())
    u0, s0 = read_cpu_times(server.pid)
    await asyncio.sleep(seconds)
    u1, s1 = read_cpu_times(server.pid)
    m1 = prom.parse(await server.metrics())
    talker.talking = False
    copies = prom.value(m1, "voice_media_packets_out_total") - prom.value(
        m0, "voice_media_packets_out_total"
    )
    hist = prom.histogram_delta(m0, m1, HIST)
    await asyncio.sleep(1.5)  # the burst ends (hangover) before the next window
    if copies <= 0:
        raise RuntimeError("nothing was forwarded in a window")
    return {
        "copies": copies,
        "cpu_us_per_copy": (u1 + s1 - u0 - s0) * 1e6 / copies,
        "p50_ms": hist.percentile(50) / 1000,
        "p95_ms": hist.percentile(95) / 1000,
        "p99_ms": hist.percentile(99) / 1000,  # the top bucket's bound (50 ms) when above it
    }


async def _connect_all(group: SimGroup, people: list[SimParticipant]) -> None:
    gate = asyncio.Semaphore(16)

    async def one(p: SimParticipant) -> None:
        async with gate:
            await group.connect(p, 60.0)

    await asyncio.gather(*(one(p) for p in people))


async def _monitor_times(console: SimParticipant, channels: list[str]) -> list[float]:
    """``monitor`` each channel in turn: ms to its first RTP packet at the console."""
    seen = {"n": 0}
    on_rtp = console._on_rtp

    def counted(data: bytes, now: int) -> None:
        seen["n"] += 1
        on_rtp(data, now)

    console._on_rtp = counted  # type: ignore[method-assign]
    out = []
    for channel in channels:
        await asyncio.sleep(0.5)  # nothing else reaches the console between two monitors
        before = seen["n"]
        t0 = time.perf_counter()
        await _send(console, type="monitor", channels=[channel])
        await _wait(
            lambda before=before: seen["n"] > before,
            10.0,
            f"{channel}'s audio (console got {dict(console.messages)})",
        )
        out.append((time.perf_counter() - t0) * 1000)
        await _send(console, type="unmonitor", channels=[channel])
    return out


async def _run(
    channels: int, members: int, seconds: float, rounds: int, monitors: int, data_dir: Path
) -> dict[str, Any]:
    names = [f"c{i}" for i in range(channels)]
    mons = [f"m{i}" for i in range(monitors)]
    quiet = "desk"  # the console's own channel: nobody talks there
    server = ServerChild(data_dir, quiet, more_channels=[*names, BIG, *mons])
    await server.start()
    group = SimGroup(server.ws_url, quiet, lambda i: server.token(f"p{i}"), shared=True)
    try:
        people = [
            group.participant(server.token(f"{c}-{k}", channel=c), c, f"{c}-{k}")
            for c in names
            for k in range(members)
        ]
        people += [
            group.participant(server.token(f"big-{k}", channel=BIG), BIG, f"big-{k}")
            for k in range(channels * members)
        ]
        staff = group.participant(server.token("staff", channel=BIG), BIG, "staff")
        talkers = [group.participant(server.token(f"t-{c}", channel=c), c, f"t-{c}") for c in mons]
        every = [quiet, *names, *mons]
        console = group.participant(
            server.token("sup", role="supervisor", channels=every), quiet, "console"
        )
        await _connect_all(group, [*people, staff, *talkers, console])
        await _send(console, type="talk_target", channels=names, id="all")
        await _wait(lambda: console.messages["talk_target_set"] > 0, 10.0, "the talk target")
        load_before = os.getloadavg()
        windows: dict[str, list[dict[str, float]]] = {"plain": [], "all_call": []}
        for _ in range(rounds):
            windows["plain"].append(await _window(server, staff, seconds))
            windows["all_call"].append(await _window(server, console, seconds))
        for t in talkers:
            t.talking = True
        monitor_ms = await _monitor_times(console, mons) if mons else []
        load_after = os.getloadavg()
        renegotiations = console.renegotiations
    finally:
        await group.close()
        await server.stop()
    return _result(channels, members, seconds, windows, monitor_ms, renegotiations, load_before,
                   load_after)  # fmt: skip


def _median(windows: list[dict[str, float]], key: str) -> float:
    return float(statistics.median(w[key] for w in windows))


def _result(
    channels: int,
    members: int,
    seconds: float,
    windows: dict[str, list[dict[str, float]]],
    monitor_ms: list[float],
    renegotiations: int,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    plain, allc = windows["plain"], windows["all_call"]
    ratios = [a["cpu_us_per_copy"] / p["cpu_us_per_copy"] for p, a in zip(plain, allc, strict=True)]
    summary: dict[str, dict[str, Any]] = {
        mode: {
            "cpu_us_per_copy": round(_median(ws, "cpu_us_per_copy"), 3),
            "added_latency_ms": {
                "p50": round(_median(ws, "p50_ms"), 3),
                "p95": round(_median(ws, "p95_ms"), 3),
                "p99": round(_median(ws, "p99_ms"), 3),
            },
            "copies_per_window": round(_median(ws, "copies")),
        }
        for mode, ws in windows.items()
    }
    monitor = (
        {k: round(v, 1) for k, v in percentiles(monitor_ms, (50, 95)).items()} if monitor_ms else {}
    )
    return {
        "channels": channels,
        "members": members,
        "copies_per_packet": channels * members,
        "seconds_per_window": seconds,
        "windows": windows,
        "plain": summary["plain"],
        "all_call": summary["all_call"],
        "cpu_per_copy_ratio": {
            "median": round(float(statistics.median(ratios)), 3),
            "min": round(min(ratios), 3),
            "max": round(max(ratios), 3),
        },
        "p99_added_ms": round(
            summary["all_call"]["added_latency_ms"]["p99"]
            - summary["plain"]["added_latency_ms"]["p99"],
            3,
        ),
        "monitor_to_audio_ms": {**monitor, "samples": len(monitor_ms)},
        "renegotiations": renegotiations,
        "targets": TARGETS,
        "loadavg": {"before": list(load_before), "after": list(load_after)},
        "cpus": os.cpu_count(),
    }


def run_console_bench(
    channels: int = 10,
    members: int = 20,
    seconds: float = 10.0,
    rounds: int = 3,
    monitors: int = 20,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        return asyncio.run(_run(channels, members, seconds, rounds, monitors, Path(tmp)))


def format_summary(r: dict[str, Any]) -> str:
    p, a, m = r["plain"], r["all_call"], r["monitor_to_audio_ms"]
    load = r["loadavg"]
    return (
        f"all-call into {r['channels']} x {r['members']} vs plain forwarding to "
        f"{r['copies_per_packet']} in one channel: CPU per copy {a['cpu_us_per_copy']} vs "
        f"{p['cpu_us_per_copy']} us (ratio median {r['cpu_per_copy_ratio']['median']}, target "
        f"<= 1.1); added latency p99 {a['added_latency_ms']['p99']} vs "
        f"{p['added_latency_ms']['p99']} ms ({r['p99_added_ms']:+} ms, target <= +1); "
        f"monitor -> audio p50 {m.get('p50')} ms, p95 {m.get('p95')} ms over {m['samples']} "
        f"(target p95 <= 1000); load {load['before'][0]:.2f} -> {load['after'][0]:.2f} "
        f"on {r['cpus']} CPUs"
    )
