"""``bench forward`` runs end to end at a tiny size: the contract's keys and sane values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from voice_server.bench.forward import run_forward_bench
from voice_server.cli import main

pytestmark = pytest.mark.integration


def test_forward_bench_reports_the_contract_keys_with_sane_values() -> None:
    result = run_forward_bench(1, 5, seconds=3.0, warmup=1.0, relay=False)

    forward = result["forward"]
    for key in ("cpu_us_per_packet", "loss", "cpu_cores", "server_rss_mb"):
        assert math.isfinite(forward[key])
    assert 0 < forward["cpu_us_per_packet"] < 100_000
    latency = forward["added_latency_ms"]
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] < 1000
    assert latency["count"] == forward["packets"]
    # 1 talker at 50 packets/s to 5 listeners for ~3 s, on a noisy shared machine
    assert forward["packets"] > 0.5 * 5 * 50 * 3
    assert forward["expected_copies"] == 5 * forward["packets_routed"]
    assert 0.0 <= forward["loss"] < 0.05
    assert forward["server_socket_drops"] == 0
    generator = forward["generator"]
    assert generator["received"] > 0.5 * forward["packets"]
    assert generator["e2e_latency_ms"]["count"] == generator["received"]
    assert generator["first_audio_ms"]["count"] == 5
    assert isinstance(forward["valid"], bool)
    assert 0 < forward["floor"]["cpu_us_per_packet"] < 1000
    assert result["relay"] is None and result["ratio"] is None
    assert result["meets_targets"]["ratio"] is None


def test_bench_forward_cli_writes_the_nested_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "forward",
            "--speakers",
            "1",
            "--listeners",
            "2",
            "--seconds",
            "1",
            "--warmup",
            "0.5",
            "--no-relay",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) >= {"forward", "relay", "ratio"}
    assert set(data["forward"]["added_latency_ms"]) >= {"p50", "p95", "p99"}
    assert "CPU per forwarded packet" in capsys.readouterr().out
