"""The capacity ratio of ``bench workers``: how many participants one media worker holds, and two.

*Held* means what the load test's targets say of a server at capacity: every participant joined
and heard every talker, no copy lost (``server.loss`` 0) and the server's added latency p99 at
most 5 ms (``voice-server loadtest``, :mod:`voice_server.loadtest.report`). The server runs
pinned to cores of its own (``serve`` for one worker, ``serve --workers 2`` on two: its media
workers inherit the pinning) and the load generator (``voice-server loadtest --url``) to the
others, the same ones for both, so the generator never takes the server's CPU. Channels of
``per_channel`` members, one talker each, are added a ``step`` at a time (a fresh server each
step) until one is not held; then once between the last held size and that one. The ratio is
two workers' capacity ÷ one's.

It needs cores: one per server worker of the larger run and at least two for the generator
(:data:`MIN_CORES`). With fewer, ``bench workers`` says why it is not measured, unless asked to
run it anyway (``--capacity on``: the figures then only show that the machinery works).

The pure parts (:func:`split_cores`, :func:`judge`, :class:`Search`) are tested apart from the
processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voice_server.bench.serverproc import ServerChild, pin_to

__all__ = [
    "GENERATOR_CORES",
    "MIN_CORES",
    "CapacityPlan",
    "Search",
    "judge",
    "measure_capacity",
    "split_cores",
]

GENERATOR_CORES = 2
MIN_CORES = 2 + GENERATOR_CORES  # two server workers' cores + the generator's
HELD_P99_MS = 5.0
STEP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CapacityPlan:
    per_channel: int = 20
    start: int = 200  # participants at the first step
    step: int = 200
    limit: int = 4000
    seconds: float = 10.0  # measured window of each step
    join_rate: float = 200.0

    def __post_init__(self) -> None:
        if self.per_channel < 2 or self.start < self.per_channel or self.step < self.per_channel:
            raise ValueError("capacity steps need at least one channel of two members")
        if self.limit < self.start or self.seconds <= 0 or self.join_rate <= 0:
            raise ValueError("capacity limit below its start, or no measured window")

    def channels(self, participants: int) -> int:
        return max(1, participants // self.per_channel)


def split_cores(cores: Sequence[int], workers: int, *, force: bool = False) -> tuple[
    list[int] | None, list[int] | None
]:  # fmt: skip
    """(the server's cores, the generator's) for a run of ``workers`` media workers: the server
    the first ``workers`` of the usable cores, the generator every core after the first two
    (the same for one worker and two). None, None when the cores are too few, unless ``force``
    (nothing pinned then)."""
    usable = sorted(cores)
    if len(usable) < MIN_CORES:
        if force:
            return None, None
        raise ValueError(
            f"{len(usable)} usable cores: the capacity ratio needs {MIN_CORES} (two for the "
            f"server's workers, {GENERATOR_CORES} for the load generator)"
        )
    return usable[:workers], usable[2:]


def judge(result: dict[str, Any]) -> tuple[bool, str]:
    """Whether one load test's result is *held*, and in a few words why not."""
    server = result.get("server", {})
    if not result.get("valid", False):
        return False, "invalid: " + "; ".join(result.get("valid_reasons", []))[:200]
    if result.get("participants_joined") != result.get("participants_planned"):
        return False, "not every participant joined"
    if result.get("participants_heard") != result.get("participants_planned"):
        return False, "not every participant heard every talker"
    loss = server.get("loss")
    if loss is None or loss > 0:
        return False, f"loss {loss}"
    p99 = server.get("added_latency_ms", {}).get("p99")
    if p99 is None or p99 > HELD_P99_MS:
        return False, f"added latency p99 {p99} ms"
    return True, "held"


@dataclass
class Search:
    """Step up until a size is not held, then once between the last held size and it."""

    plan: CapacityPlan
    tried: dict[int, bool] = field(default_factory=dict)
    stopped: str | None = None  # why the search ended early (the generator could not keep up)

    def _round(self, n: int) -> int:
        return max(self.plan.per_channel, n // self.plan.per_channel * self.plan.per_channel)

    def next_size(self) -> int | None:
        if self.stopped is not None:
            return None
        if not self.tried:
            return self._round(self.plan.start)
        held = [n for n, ok in self.tried.items() if ok]
        failed = [n for n, ok in self.tried.items() if not ok]
        best = max(held, default=0)
        if not failed:
            n = self._round(best + self.plan.step)
            return n if n <= self.plan.limit and n not in self.tried else None
        low = min(n for n in failed)
        if low - best <= self.plan.step // 2:
            return None
        mid = self._round((best + low) // 2)
        if mid <= best or mid >= low or mid in self.tried:
            return None
        return mid

    def record(self, participants: int, held: bool) -> None:
        self.tried[participants] = held

    @property
    def capacity(self) -> int:
        return max((n for n, ok in self.tried.items() if ok), default=0)


def _loadtest(
    server: ServerChild, plan: CapacityPlan, participants: int, cores: list[int] | None, out: Path
) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "voice_server.cli", "loadtest",
        "--url", f"http://127.0.0.1:{server.port}", "--data-dir", str(server.data_dir),
        "--server-pid", str(server.pid), "--channels", str(plan.channels(participants)),
        "--per-channel", str(plan.per_channel), "--talkers", "1",
        "--duration", str(plan.seconds), "--join-rate", str(plan.join_rate), "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        preexec_fn=None if cores is None else pin_to(frozenset(cores)),
        check=False,
    )
    if not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"loadtest failed at {participants} participants: {tail[0]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


async def _step(
    workers: int,
    participants: int,
    plan: CapacityPlan,
    server_cores: list[int] | None,
    gen_cores: list[int] | None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        server = ServerChild(
            Path(tmp),
            "cap-0",
            args=["--workers", str(workers)],
            env={"VOICE_CALL_LOG": "0"},  # voice only, as the load test's own server
            cores=server_cores,
        )
        await server.start()
        try:
            result = await asyncio.to_thread(
                _loadtest, server, plan, participants, gen_cores, Path(tmp) / "load.json"
            )
        finally:
            await server.stop()
    ok, why = judge(result)
    s = result.get("server", {})
    return {
        "participants": participants,
        "held": ok,
        "why": why,
        "added_p99_ms": s.get("added_latency_ms", {}).get("p99"),
        "loss": s.get("loss"),
        "server_cpu_cores": s.get("cpu_cores"),
        "server_processes": s.get("processes"),
        "generator_cpu_cores": result.get("generator", {}).get("cpu_cores"),
        "valid": result.get("valid"),
    }


async def _search(
    workers: int, plan: CapacityPlan, server_cores: list[int] | None, gen_cores: list[int] | None
) -> dict[str, Any]:
    search = Search(plan)
    steps: list[dict[str, Any]] = []
    while (n := search.next_size()) is not None:
        step = await _step(workers, n, plan, server_cores, gen_cores)
        steps.append(step)
        if step["valid"] is False:
            # the generator (or something else on the machine) fell behind: a size it cannot
            # drive says nothing of the server
            search.stopped = step["why"]
            break
        search.record(n, bool(step["held"]))
    return {
        "workers": workers,
        "server_cores": server_cores,
        "generator_cores": gen_cores,
        "capacity": search.capacity,
        "stopped": search.stopped,
        "steps": steps,
    }


def measure_capacity(plan: CapacityPlan, *, force: bool = False) -> dict[str, Any]:
    """One worker's capacity and two workers', and the ratio (see the module docstring). Must
    be called with no event loop running. Raises ValueError when the cores are too few and
    ``force`` is not set."""
    cores = sorted(os.sched_getaffinity(0))
    runs = []
    for workers in (1, 2):
        server_cores, gen_cores = split_cores(cores, workers, force=force)
        runs.append(asyncio.run(_search(workers, plan, server_cores, gen_cores)))
    one, two = runs
    ratio = round(two["capacity"] / one["capacity"], 3) if one["capacity"] else None
    return {
        "measured": True,
        "forced": len(cores) < MIN_CORES,
        "usable_cores": len(cores),
        "plan": {
            "per_channel": plan.per_channel,
            "start": plan.start,
            "step": plan.step,
            "limit": plan.limit,
            "seconds": plan.seconds,
            "talkers_per_channel": 1,
            "held": f"all joined and heard, loss 0, added latency p99 <= {HELD_P99_MS} ms",
        },
        "one": one,
        "two": two,
        "ratio": ratio,
    }
