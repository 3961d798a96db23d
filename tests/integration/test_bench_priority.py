"""``bench priority`` runs end to end at a tiny size: the contract's keys and sane values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_server.cli import main

pytestmark = pytest.mark.integration


def test_priority_bench_reports_cut_in_figures_and_the_load(tmp_path: Path) -> None:
    out = tmp_path / "priority.json"
    assert main(["bench", "priority", "--cutins", "3", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["cutins"] == 3 and 0 <= result["missed"] <= 3
    for key in ("first_copy_ms", "duck_ms"):
        figures = result["cutin"][key]
        assert 0 <= figures["p50"] <= figures["p95"] < 10_000, result
    assert len(result["loadavg"]["before"]) == 3 and result["cpus"] >= 1
