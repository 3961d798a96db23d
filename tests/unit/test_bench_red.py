"""``voice-server bench red`` runs and reports both modes (a small run; figures not asserted)."""

from __future__ import annotations

from voice_server.bench.red import format_summary, run_red_bench


def test_a_small_run_reports_both_modes_and_their_ratio() -> None:
    result = run_red_bench(listeners=4, packets=5, rounds=1)
    assert result["on"]["cpu_us_per_copy_median"] > 0
    assert result["off"]["cpu_us_per_copy_median"] > 0
    assert result["ratio"] is not None and "ratio on/off" in format_summary(result)
