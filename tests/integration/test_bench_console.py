"""``bench console`` runs end to end at a tiny size: the contract's keys and sane values (the
monitor part past the 64 m-line limit, where the console gets a fresh peer connection)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_server.cli import main

pytestmark = pytest.mark.integration


def test_console_bench_reports_per_copy_cost_latency_and_monitor_times(tmp_path: Path) -> None:
    out = tmp_path / "console.json"
    args = ["--channels", "2", "--members", "2", "--seconds", "1", "--rounds", "1"]
    assert main(["bench", "console", *args, "--monitors", "24", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["copies_per_packet"] == 4
    for mode in ("plain", "all_call"):
        assert r[mode]["cpu_us_per_copy"] > 0 and r[mode]["copies_per_window"] > 0, r
        lat = r[mode]["added_latency_ms"]
        assert 0 <= lat["p50"] <= lat["p95"] <= lat["p99"], r
    assert r["cpu_per_copy_ratio"]["median"] > 0
    m = r["monitor_to_audio_ms"]
    assert m["samples"] == 24 and 0 < m["p50"] <= m["p95"] < 10_000, m
    assert r["renegotiations"] >= 20  # one per fresh channel, but after the fresh connection
    assert len(r["loadavg"]["before"]) == 3 and r["cpus"] >= 1


def test_console_bench_refuses_bad_sizes_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "console", "--channels", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--channels" in err[0], err
