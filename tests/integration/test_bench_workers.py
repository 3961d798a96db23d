"""``voice-server bench workers`` end to end on a small load (structure, not speed): the real
server with one worker then two, simulated participants, the relay's hop and the wake floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voice_server.bench.capacity import MIN_CORES
from voice_server.bench.wakefloor import measure_wake_floor


def test_wake_floor_counts_every_datagram_handed_over() -> None:
    floor = measure_wake_floor(200.0, seconds=1.0)
    # paced from a timer: the window holds about rate x seconds datagrams, all received
    assert 150 <= floor["received"] <= 201
    assert floor["us_per_datagram"] >= 0
    assert floor["us_per_datagram"] == pytest.approx(
        floor["send_us"] + floor["receive_us"], abs=0.02
    )


def test_wake_floor_refuses_a_rate_it_cannot_pace() -> None:
    with pytest.raises(ValueError):
        measure_wake_floor(0.5)
    with pytest.raises(ValueError):
        measure_wake_floor(100.0, seconds=0)


def test_bench_workers_command_small(tmp_path: Path) -> None:
    out = tmp_path / "workers.json"
    proc = subprocess.run(
        [sys.executable, "-m", "voice_server.cli", "bench", "workers", "--channels", "1",
         "--members", "4", "--seconds", "2", "--warmup", "0.5", "--json", str(out),
         # the capacity search forced on this machine: one step each, to see it run
         "--capacity", "on", "--capacity-members", "4", "--capacity-start", "8",
         "--capacity-step", "8", "--capacity-limit", "8", "--capacity-seconds", "2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "relay overhead" in proc.stdout and "wake floor" in proc.stdout
    result = json.loads(out.read_text())
    assert result["one"]["workers"] == 1 and result["two"]["workers"] == 2
    assert result["one"]["copies"] > 0 and result["two"]["copies"] > 0
    assert result["one"]["relayed_per_second"] == 0
    assert result["two"]["relayed_per_second"] > 0  # round-robin split the channel
    assert len(result["two"]["split"]) == 2
    floor = result["relay"]["wake_floor"]
    assert floor is not None and floor["received"] > 0
    assert result["relay"]["overhead_above_floor"] == pytest.approx(
        result["relay"]["overhead"] - floor["overhead_share"], abs=1e-3
    )
    capacity = result["capacity"]
    assert capacity["measured"] is True
    assert capacity["forced"] is (len(os.sched_getaffinity(0)) < MIN_CORES)
    for run, processes in ((capacity["one"], 1), (capacity["two"], 3)):
        (step,) = run["steps"]  # the limit is the start: one size
        assert step["participants"] == 8
        # the load test counted the media workers as the server (parent + 2 workers)
        assert step["server_processes"] == processes
        assert step["server_cpu_cores"] > 0
    assert "capacity ratio two/one" in proc.stdout
