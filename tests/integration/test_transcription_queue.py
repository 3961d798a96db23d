"""The transcription job queue under worker kills (real PostgreSQL, and one SQLite file shared
by the processes; real worker processes with a fake recognizer): 1,000 bursts, three workers,
one SIGKILLed every 3 s and started again; every burst is committed exactly once (the fence
counter of every job is 1, one commit event per burst) and none is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_server.bench.queue import QueueRun, run_queue


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_three_workers_one_killed_every_few_seconds_lose_and_double_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    run = QueueRun(bursts=1000, workers=3, rate=100.0, kill_every_s=3.0, lease_s=2.0, timeout_s=300)
    got = run_queue(url, tmp_path, run)
    assert got["bursts"] == 1000
    assert got["lost"] == 0, got
    assert got["committed_twice"] == 0, got
    assert got["fence_passes_over_one"] == 0, got
    assert got["kills"] >= 2, got
    assert len(list(tmp_path.glob("clips/**/*.ogg"))) >= 900  # moved to their clip paths
