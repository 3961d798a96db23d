"""``voice-server bench search`` runs end to end on a tiny call log (the README figures come
from ``--rows 1000000``); ``voice-server purge`` reports and changes nothing with --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_server.bench.search import FILTERS
from voice_server.bench.search_data import TERMS
from voice_server.cli import main


def test_bench_search_reports_every_class_sizes_and_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "search.json"
    assert main(["bench", "search", "--rows", "400", "--runs", "2", "--json", str(out)]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["rows"] == 400 and report["build_seconds"] >= 0
    assert len(report["classes"]) == len(TERMS) * 3 * len(FILTERS)
    for name, figures in report["classes"].items():
        assert 0 <= figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"], name
        if "/none/" in name:
            assert figures["hits_per_page"] == 0, name
    assert report["utterance_fts_bytes"] > 0 and report["utterance_grams_bytes"] > 0
    assert set(report["worst_p95_ms"]) == {"1", "2", "3+"}
    assert report["targets_p95_ms"] == {"1": 100.0, "2": 100.0, "3+": 10.0}


def test_purge_dry_run_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path)
    assert main(["channels", "add", "ops", "--data-dir", data]) == 0
    assert main(["channels", "set", "ops", "--retention-days", "30", "--data-dir", data]) == 0
    capsys.readouterr()
    assert main(["purge", "--dry-run", "--data-dir", data]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"] is True
    assert [(c["channel"], c["utterances"]) for c in report["channels"]] == [("ops", 0)]


def test_bench_search_on_postgres_starts_its_own_server_and_reports_the_same_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voice_server.bench.pgserver import find_bindir

    if find_bindir() is None:
        pytest.skip("PostgreSQL server not installed (scripts/install-test-deps.sh installs it)")
    pytest.importorskip("psycopg", reason="pip extra [postgres]")
    out = tmp_path / "pg.json"
    argv = ["bench", "search", "--backend", "postgres", "--rows", "400", "--runs", "2"]
    assert main([*argv, "--json", str(out)]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["backend"] == "postgres" and report["insert_rows_per_second"] > 0
    assert len(report["classes"]) == len(TERMS) * 3 * len(FILTERS)
    for name, figures in report["classes"].items():
        if "/none/" in name:
            assert figures["hits_per_page"] == 0, name
    assert report["utterance_trgm_bytes"] > 0 and report["utterance_grams_bytes"] > 0
    assert report["targets_p95_ms"] == {"1": 50.0, "2": 50.0, "3+": 50.0}
