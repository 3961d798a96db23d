"""The transcriber engine with a fake recognizer: a live burst and a spool burst give the same
recognizer input, commit once with the right times, report partials; aborted bursts commit
nothing; with a job queue (both backends) a live commit passes its fence."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.backends import BACKENDS, database
from tests.transcribe_helpers import FakeFactory, opus_tone, rtp
from voice_server.backends.seam import open_call_log, open_job_queue
from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.jobqueue import ALREADY_DONE, COMMITTED, FENCED_OUT
from voice_server.calllog.model import Utterance, new_burst_id
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database
from voice_server.transcribe.engine import Engine
from voice_server.transcribe.errorrate import edit_distance, score
from voice_server.transcribe.packets import opus_samples

START = 1_780_000_000_000


def meta() -> BurstMeta:
    return BurstMeta(new_burst_id(START), "ops", "sato", "佐藤", "s1", START)


def engine(tmp_path: Path, factory: FakeFactory, **kw: object) -> tuple[Engine, SqliteCallLog]:
    log = SqliteCallLog(Database(tmp_path / "voice.db"))
    return Engine(factory, log, workers=2, **kw), log  # type: ignore[arg-type]


def test_a_live_burst_is_committed_once_with_times_from_its_packets(tmp_path: Path) -> None:
    factory = FakeFactory()
    partials: list[str] = []
    committed: list[Utterance] = []
    eng, log = engine(
        tmp_path,
        factory,
        on_partial=lambda m, t: partials.append(t),
        on_committed=committed.append,
        phrases_of=lambda ch: ["東門"],
    )
    packets = opus_tone(2.0)
    m = meta()
    job = eng.job(m, live=True)
    assert job is not None and eng.job(m, live=True) is None  # one job per burst
    for i, p in enumerate(packets):
        if i != 10:  # one lost packet: filled, time kept
            eng.push_rtp(job, rtp(100 + i, p))
    eng.end(job, START + 2600)
    assert job.finished.wait(10)
    eng.close()
    (u,) = committed
    assert u.id == m.id and u.speaker_name == "佐藤" and u.end_ms - u.start_ms == 2000
    assert u.text == "heard 2 s" and u.model == "fake-model" and u.clip and m.id in u.clip
    assert partials and factory.made[0].phrases == ["東門"]
    assert set(factory.made[0].chunks[:-1]) == {6400}  # fixed 0.2 s chunks
    assert log.commit_latencies_ms(0)[0] >= 0
    assert m.id not in eng.active
    assert factory.made[0].closed == 1  # the recognizer went back to the pool


def test_spool_and_live_paths_feed_the_recognizer_identically(tmp_path: Path) -> None:
    factory = FakeFactory()
    eng, _ = engine(tmp_path, factory)
    packets = opus_tone(1.0)
    live = eng.job(meta(), live=True)
    assert live is not None
    for i, p in enumerate(packets):
        eng.push_rtp(live, rtp(i, p))
    eng.end(live)
    spooled = eng.job(meta(), live=False)
    assert spooled is not None
    eng.push_opus(spooled, [(p, opus_samples(p)) for p in packets])
    eng.end(spooled)
    assert live.finished.wait(10) and spooled.finished.wait(10)
    eng.close()
    a, b = factory.made
    assert a.chunks == b.chunks


def test_a_burst_already_done_is_not_committed_twice_and_aborts_commit_nothing(
    tmp_path: Path,
) -> None:
    factory = FakeFactory()
    eng, log = engine(tmp_path, factory)
    m = meta()
    for _ in range(2):
        job = eng.job(m, live=False)
        assert job is not None
        eng.push_opus(job, [(p, opus_samples(p)) for p in opus_tone(0.4)])
        eng.end(job)
        assert job.finished.wait(10)
    assert eng.counters.committed == 1 and eng.counters.already_done == 1
    other = eng.job(meta(), live=True)
    assert other is not None
    eng.abort(other)
    assert other.finished.is_set() and eng.counters.aborted == 1
    # aborted half-way: the recognizer it had is given back by a worker
    third = eng.job(meta(), live=True)
    assert third is not None
    for i, p in enumerate(opus_tone(0.6)):
        eng.push_rtp(third, rtp(i, p))
    deadline = time.monotonic() + 10
    while len(factory.made) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    eng.abort(third)
    while factory.made[-1].closed == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    eng.close()
    assert log.get(other.meta.id) is None and log.get(third.meta.id) is None
    assert [r.closed for r in factory.made] == [1, 1, 1]


def test_error_rates_after_normalization() -> None:
    assert edit_distance("kitten", "sitting") == 3
    s = score("東門で 水漏れ", "東 門 で 水 漏れ", "ja")
    assert s.cer == 0.0
    s = score("물이 새고 있습니다", "물이 세고 있습니다", "ko")
    assert s.char_errors == 1 and s.word_errors == 1 and s.words == 3


def test_an_emergency_burst_is_committed_as_kind_emergency(tmp_path: Path) -> None:
    committed: list[Utterance] = []
    eng, log = engine(tmp_path, FakeFactory(), on_committed=committed.append)
    m = BurstMeta(new_burst_id(START), "ops", "sato", "佐藤", "s1", START, "emergency")
    job = eng.job(m, live=True)
    assert job is not None
    for i, p in enumerate(opus_tone(1.0)):
        eng.push_rtp(job, rtp(100 + i, p))
    eng.end(job, START + 1200)
    assert job.finished.wait(10)
    eng.close()
    (u,) = committed
    stored = log.get(m.id)
    assert u.kind == "emergency" and stored is not None and stored.kind == "emergency"


@pytest.mark.parametrize("kind", BACKENDS)
def test_with_a_job_queue_a_live_burst_commits_through_it(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A burst transcribed live while a worker holds its job: the live commit makes the job done
    (its one pass through the fence), the worker's fenced commit is refused; the same burst
    live again writes nothing."""
    with database(kind, tmp_path, request) as db:
        log = open_call_log(getattr(db, "pg_url", None), tmp_path, db)
        queue = open_job_queue(db)
        committed: list[Utterance] = []
        eng = Engine(FakeFactory(), log, workers=2, queue=queue, on_committed=committed.append)
        m = meta()
        queue.enqueue([(m.id, START)])
        held = queue.claim("w1", 30)
        assert held is not None and held.id == m.id
        for outcome in (COMMITTED, ALREADY_DONE):
            job = eng.job(m, live=True)
            assert job is not None
            for i, p in enumerate(opus_tone(0.6)):
                eng.push_rtp(job, rtp(100 + i, p))
            eng.end(job, START + 800)
            assert job.finished.wait(10) and job.outcome == outcome
        eng.close()
        assert [u.id for u in committed] == [m.id] and log.get(m.id) is not None
        assert (eng.counters.committed, eng.counters.already_done) == (1, 1)
        assert queue.commit(held, committed, committed_ms=START) == FENCED_OUT
        counts = queue.counts()
        assert (counts.queued, counts.done, counts.twice) == (0, 1, 0)
        assert len(log.events_after(0)) == 1
        queue.close()
