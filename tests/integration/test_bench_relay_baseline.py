"""The aiortc MediaRelay baseline runs end to end at a tiny size on 127.0.0.1."""

from __future__ import annotations

import math

import pytest

from voice_server.bench.relay_baseline import run_relay_baseline


@pytest.mark.integration
def test_relay_baseline_delivers_packets_and_reports_finite_positive_figures() -> None:
    result = run_relay_baseline(speakers=1, listeners=2, seconds=3.0, warmup=1.0)

    assert result["speakers"] == 1
    assert result["listeners"] == 2
    assert result["packets"] > 0
    # 1 speaker × 2 listeners × 50 packets/s × 3 s; allow for a noisy shared machine
    assert result["packets"] > 0.5 * result["expected_packets"]
    for key in ("cpu_us_per_packet", "cpu_cores"):
        value = result[key]
        assert math.isfinite(value)
        assert value > 0
    assert 0.0 <= result["loss"] < 0.5
    assert result["relay_sent_packets"] > 0
