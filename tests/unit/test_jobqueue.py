"""The transcription job queue on both backends (real SQLite and PostgreSQL): one claim takes
one job, a lease keeps it, a lost lease fences the commit out (nothing written), commits are
idempotent, done jobs are swept, NOTIFY wakes a waiting worker (PostgreSQL); a live commit passes
the same fence: before or after the burst's job is queued, while a worker holds it, racing it —
each burst is written once and no job's ``commits`` exceeds 1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
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


def events(calllog: Any) -> int:
    return len(calllog.events_after(0, 1000))


def test_a_live_commit_before_the_job_is_queued_leaves_nothing_to_claim(
    stores: tuple[Any, Any, Any],
) -> None:
    _, calllog, queue = stores
    row = utterance(burst(10))
    assert queue.commit_live(burst(10), [row], burst_end_ms=3, committed_ms=5) == COMMITTED
    assert calllog.get(burst(10)) is not None
    assert queue.enqueue([(burst(10), 3)]) == 0  # the server's enqueue after its spool close
    assert queue.claim("w1", 30) is None  # no worker transcribes it again
    assert queue.commit_live(burst(10), [row], committed_ms=6) == ALREADY_DONE
    counts = queue.counts()
    assert (counts.queued, counts.done, counts.twice) == (0, 1, 0)
    assert events(calllog) == 1


def test_a_live_commit_of_a_queued_job_makes_it_done(stores: tuple[Any, Any, Any]) -> None:
    _, calllog, queue = stores
    queue.enqueue([(burst(11), 1), (burst(12), 2)])
    gap = Gap(burst(11), "ops", "u1", "Ueda", 1, 2, "no_speech", "")
    assert queue.commit_live(burst(11), [], gap, committed_ms=5) == COMMITTED  # a gap too
    claim = queue.claim("w1", 30)
    assert claim is not None and claim.id == burst(12)  # the live one is not offered
    assert calllog.done([burst(11), burst(12)]) == {burst(11)}
    counts = queue.counts()
    assert (counts.queued, counts.done, counts.twice) == (1, 1, 0)


def test_a_worker_commit_then_a_live_one_writes_once(stores: tuple[Any, Any, Any]) -> None:
    _, calllog, queue = stores
    queue.enqueue([(burst(13), 1)])
    claim = queue.claim("w1", 30)
    assert queue.commit(claim, [utterance(burst(13))], committed_ms=5) == COMMITTED
    late = replace(utterance(burst(13)), text="遅い")
    assert queue.commit_live(burst(13), [late], committed_ms=6) == ALREADY_DONE
    assert calllog.get(burst(13)).text == "了解" and events(calllog) == 1
    assert queue.counts().twice == 0


def test_a_live_commit_takes_the_job_from_the_worker_leasing_it(
    stores: tuple[Any, Any, Any],
) -> None:
    """The rule: a live commit while a worker holds a running lease is the burst's one pass
    through the fence; the holder's extend and commit (rows or gap) are refused after it."""
    _, calllog, queue = stores
    queue.enqueue([(burst(14), 1)])
    held = queue.claim("w1", 30)
    assert held is not None and queue.counts().leased == 1
    assert queue.commit_live(burst(14), [utterance(burst(14))], committed_ms=5) == COMMITTED
    assert not queue.extend(held, 30)
    assert queue.commit(held, [utterance(burst(14))], committed_ms=6) == FENCED_OUT
    gap = Gap(burst(14), "ops", "u1", "Ueda", 1, 2, "no_speech", "")
    assert queue.commit(held, [], gap, committed_ms=7) == FENCED_OUT
    assert not queue.release(held)
    assert events(calllog) == 1 and calllog.gaps(channels=None, since_ms=None, until_ms=None) == []
    counts = queue.counts()
    assert (counts.queued, counts.done, counts.twice) == (0, 1, 0)


def test_live_and_worker_commits_racing_write_each_burst_once(
    stores: tuple[Any, Any, Any],
) -> None:
    """Both commits of each burst start together (a barrier) on their own connections: one of
    them writes, the other is told ALREADY_DONE or FENCED_OUT; ``twice`` stays 0."""
    _, calllog, queue = stores
    n = 20
    queue.enqueue([(burst(100 + i), i) for i in range(n)])
    claims = [queue.claim("w1", 60) for _ in range(n)]
    assert all(c is not None for c in claims)
    outcomes: dict[str, list[str]] = {c.id: [] for c in claims}
    barrier = threading.Barrier(2)

    def worker() -> None:
        for c in claims:
            barrier.wait(30)
            outcomes[c.id].append(queue.commit(c, [utterance(c.id)], committed_ms=5))

    def live() -> None:
        for c in claims:
            barrier.wait(30)
            outcomes[c.id].append(queue.commit_live(c.id, [utterance(c.id)], committed_ms=5))

    threads = [threading.Thread(target=worker), threading.Thread(target=live)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for burst_id, got in outcomes.items():
        assert sorted(got) in (
            [ALREADY_DONE, COMMITTED],  # the worker first: the live commit finds it done
            [COMMITTED, FENCED_OUT],  # the live commit first: the worker's fence is refused
        ), (burst_id, got)
    assert events(calllog) == n
    counts = queue.counts()
    assert (counts.queued, counts.done, counts.twice) == (0, n, 0)
