"""The transcription job queue on both backends (real SQLite and PostgreSQL): one claim takes
one job, a lease keeps it, a lost lease fences the commit out (nothing written), commits are
idempotent, done jobs are swept, NOTIFY wakes a waiting worker (PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import database
from voice_server.backends.seam import open_call_log, open_job_queue
from voice_server.calllog.jobqueue import ALREADY_DONE, COMMITTED, FENCED_OUT
from voice_server.calllog.model import Gap, Utterance

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    with database(request.param, tmp_path, request) as db:
        url = getattr(db, "pg_url", None)
        calllog = open_call_log(url, tmp_path, db)
        queue = open_job_queue(db)
        yield db, calllog, queue
        queue.close()


def burst(i: int) -> str:
    return f"{1_700_000_000_000 + i:013d}00abcd"


def utterance(burst_id: str) -> Utterance:
    return Utterance(burst_id, "ops", "u1", "Ueda", 1, 2, "了解")


def wait_for(check: Any, deadline_s: float = 30.0) -> Any:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def test_one_claim_takes_one_job_oldest_first(stores: tuple[Any, Any, Any]) -> None:
    _, _, queue = stores
    assert queue.enqueue([(burst(i), 100 + i) for i in range(5)]) == 5
    assert queue.enqueue([(burst(0), 100)]) == 0  # a known burst is left alone
    claim = queue.claim("w1", 30)
    assert claim is not None and claim.id == burst(0) and claim.attempt == 1
    counts = queue.counts()
    assert (counts.queued, counts.leased) == (5, 1)  # the PostgreSQL IN (…) rescan trap
    other = queue.claim("w2", 30)
    assert other is not None and other.id == burst(1)


def test_fenced_commit_once_then_swept(stores: tuple[Any, Any, Any]) -> None:
    _, calllog, queue = stores
    queue.enqueue([(burst(1), 1)])
    claim = queue.claim("w1", 30)
    assert queue.extend(claim, 30)
    assert queue.commit(claim, [utterance(burst(1))], committed_ms=5) == COMMITTED
    assert calllog.get(burst(1)) is not None
    assert queue.commit(claim, [utterance(burst(1))], committed_ms=6) == FENCED_OUT  # done
    assert not queue.extend(claim, 30)
    assert queue.claim("w2", 30) is None
    counts = queue.counts()
    assert (counts.done, counts.twice) == (1, 0)
    assert queue.sweep(3600) == 0
    time.sleep(0.01)
    assert queue.sweep(0) == 1 and queue.counts().done == 0
    # a burst the call log has already (committed live): the fence holds, nothing is doubled
    queue.enqueue([(burst(1), 1)])
    again = queue.claim("w2", 30)
    assert queue.commit(again, [utterance(burst(1))], committed_ms=7) == ALREADY_DONE
    assert len(calllog.events_after(0)) == 1


def test_a_worker_whose_lease_expired_cannot_commit(stores: tuple[Any, Any, Any]) -> None:
    _, calllog, queue = stores
    queue.enqueue([(burst(2), 1), (burst(3), 2)])
    slow = queue.claim("slow", 0.2)
    # expired, not yet taken by anyone: still fenced out
    wait_for(lambda: queue.counts().leased == 0)
    assert not queue.extend(slow, 30)  # too late to extend
    assert queue.commit(slow, [utterance(burst(2))], committed_ms=5) == FENCED_OUT
    assert calllog.get(burst(2)) is None and calllog.events_after(0) == []
    # taken by another worker: the old holder's commit and gap are refused, the new one's lands
    fast = wait_for(lambda: queue.claim("fast", 30))
    assert fast.id == burst(2) and fast.attempt == 2
    gap = Gap(burst(2), "ops", "u1", "Ueda", 1, 2, "no_speech", "")
    assert queue.commit(slow, [], gap, committed_ms=6) == FENCED_OUT
    assert not queue.release(slow)
    assert queue.commit(fast, [utterance(burst(2))], committed_ms=7) == COMMITTED
    assert calllog.get(burst(2)) is not None and calllog.done([burst(2)]) == {burst(2)}


def test_release_gives_the_job_back_after_its_delay(stores: tuple[Any, Any, Any]) -> None:
    _, _, queue = stores
    queue.enqueue([(burst(4), 1)])
    claim = queue.claim("w1", 30)
    assert queue.release(claim, 0.3)
    assert queue.claim("w2", 30) is None
    again = wait_for(lambda: queue.claim("w2", 30))
    assert again.id == burst(4) and again.attempt == 2


def test_notify_wakes_a_waiting_worker(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    with database("postgres", tmp_path, request) as db:
        waiter, producer = open_job_queue(db), open_job_queue(db)
        waiter.wait(0)  # LISTEN before anything is queued
        woke = threading.Event()

        def wait() -> None:
            waiter.wait(60)
            woke.set()

        thread = threading.Thread(target=wait)
        thread.start()
        producer.enqueue([(burst(5), 1)])
        assert woke.wait(30)  # long before the 60 s timeout
        thread.join()
        # the listener's backend killed (a database restart): a wait falls back to its timeout,
        # the next one listens again
        with db.pg.connection() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND pid <> pg_backend_pid()"
            )
        waiter.wait(0.2)
        waiter.wait(0)
        producer.enqueue([(burst(6), 1)])
        started = time.monotonic()
        waiter.wait(60)
        assert time.monotonic() - started < 30
        waiter.close()
