"""A queue worker in-process (real SQLite, real spool files, a recognizer that fails): a burst
whose transcription keeps failing is retried, then recorded as a ``transcription_failed`` gap,
never retried forever."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.backends import BACKENDS
from voice_server.backends.seam import open_call_log, open_database, open_job_queue
from voice_server.bench.queue import FakeFactory, opus_packets, write_burst
from voice_server.calllog.burst import SPOOL_DIR
from voice_server.transcribe import queueworker
from voice_server.transcribe.engine import Engine
from voice_server.transcribe.queueworker import QueueWorker


class Broken(FakeFactory):
    def create(self, phrases: list[str] | None = None) -> object:  # type: ignore[override]
        raise RuntimeError("the model fell over")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_burst_that_keeps_failing_becomes_a_gap(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(queueworker, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(queueworker, "RETRY_SECONDS", 0.01)
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    db = open_database(url, tmp_path)
    calllog, queue = open_call_log(url, tmp_path, db), open_job_queue(db)
    (tmp_path / SPOOL_DIR).mkdir()
    burst = write_burst(tmp_path / SPOOL_DIR, opus_packets(0.1), int(time.time() * 1000))
    queue.enqueue([(burst, 0)])
    engine = Engine(Broken(), calllog, workers=1, queue=queue)
    worker = QueueWorker(tmp_path, engine, calllog, queue, name="w", lease_s=30, scan=False)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not calllog.done([burst]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
        engine.close()
    (gap,) = calllog.gaps(channels=None, since_ms=None, until_ms=None)
    assert (gap.id, gap.reason, gap.detail) == (burst, "transcription_failed", "3 attempts")
    assert worker.counters.failed == 3 and engine.counters.failed == 3
    assert queue.counts().queued == 0 and queue.counts().twice == 0
    db.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_spool_scan_shares_a_clip_before_it_queues_its_burst(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A spool file the server neither uploaded nor queued (a database that was away): the
    worker's scan puts its clip into the shared store first (PostgreSQL), then queues it, so a
    worker on another node never claims a burst it cannot read."""
    import os

    from voice_server.backends.seam import open_clip_store

    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    db = open_database(url, tmp_path)
    calllog, queue = open_call_log(url, tmp_path, db), open_job_queue(db)
    clips = open_clip_store(db, tmp_path)
    (tmp_path / SPOOL_DIR).mkdir()
    start_ms = int(time.time() * 1000) - 60_000
    burst = write_burst(tmp_path / SPOOL_DIR, opus_packets(0.1), start_ms)
    spooled = tmp_path / SPOOL_DIR / f"{burst}.ogg"
    os.utime(spooled, (start_ms / 1000, start_ms / 1000))  # ended a minute ago
    engine = Engine(FakeFactory(), calllog, workers=1, queue=queue)
    worker = QueueWorker(tmp_path, engine, calllog, queue, name="w", clips=clips)
    assert clips.lacking([burst]) == ({burst} if backend == "postgres" else set())
    worker.scan()
    engine.close()
    assert queue.counts().queued == 1 and clips.lacking([burst]) == set()
    if backend == "postgres":
        assert clips.of_burst(burst) == spooled.read_bytes()
    db.close()
