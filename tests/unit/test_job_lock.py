"""The periodic jobs' locks (store/job_lock.py): SQLite always runs a step; on a real PostgreSQL
two nodes' locks (separate connections) let one hold while the other is skipped, free the lock
when the step ends or its connection dies, run a periodic step once per period across nodes, and
count every outcome (a failing step counts ``failed`` and re-raises)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voice_server.backends.seam import open_database, open_job_locks
from voice_server.metrics import MetricsRegistry
from voice_server.store.job_lock import LocalJobLocks, PgJobLocks, job_key


class Boom(Exception):
    pass


def test_job_keys_are_stable_distinct_signed_64_bit() -> None:
    keys = {job_key(j) for j in ("retention-purge", "announcement-scheduler", "keyword-match")}
    assert len(keys) == 3
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert job_key("retention-purge") == job_key("retention-purge")


def test_sqlite_always_runs_and_counts(tmp_path: Path) -> None:
    locks = open_job_locks(open_database(None, tmp_path))
    assert isinstance(locks, LocalJobLocks)
    for _ in range(2):
        with locks.step("retention-purge", every_s=3600) as held:
            assert held
    with pytest.raises(Boom), locks.step("retention-purge") as held:
        assert held
        raise Boom
    assert locks.counts.steps == {("retention-purge", "ran"): 2, ("retention-purge", "failed"): 1}
    registry = MetricsRegistry()
    registry.register(locks.families)
    text = registry.render()
    assert 'voice_jobs_steps_total{job="retention-purge",outcome="ran"} 2' in text
    assert 'voice_jobs_steps_total{job="retention-purge",outcome="failed"} 1' in text
    assert "# TYPE voice_jobs_lock_waits_total counter" in text


@pytest.fixture
def two_nodes(pg_url: str, tmp_path: Path) -> Iterator[tuple[PgJobLocks, PgJobLocks]]:
    db = open_database(pg_url, tmp_path)  # migrated (job_run)
    a, b = open_job_locks(db), PgJobLocks(pg_url)
    assert isinstance(a, PgJobLocks)
    try:
        yield a, b
    finally:
        a.close()
        b.close()
        db.close()


def test_postgres_one_node_holds_the_other_is_skipped_then_runs(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
) -> None:
    a, b = two_nodes
    with a.step("retention-purge") as held_a:
        assert held_a
        with b.step("retention-purge") as held_b:
            assert not held_b  # another node runs it
        with b.step("keyword-match") as other:
            assert other  # another job's lock is another key
    with b.step("retention-purge") as held_b:
        assert held_b  # the holder's step ended: its transaction and lock with it
    assert a.counts.steps == {("retention-purge", "ran"): 1}
    assert b.counts.steps == {
        ("retention-purge", "skipped"): 1,
        ("retention-purge", "ran"): 1,
        ("keyword-match", "ran"): 1,
    }
    registry = MetricsRegistry()
    registry.register(b.families)
    assert 'voice_jobs_steps_total{job="retention-purge",outcome="skipped"} 1' in registry.render()


def test_postgres_a_failing_step_counts_failed_reraises_and_frees_the_lock(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
) -> None:
    a, b = two_nodes
    with pytest.raises(Boom), a.step("emergency-escalate") as held:
        assert held
        raise Boom
    assert a.counts.steps == {("emergency-escalate", "failed"): 1}
    with b.step("emergency-escalate") as held:
        assert held


def test_postgres_a_connection_closed_mid_step_frees_the_lock(
    two_nodes: tuple[PgJobLocks, PgJobLocks], pg_url: str
) -> None:
    """A node killed mid-step (its session ends) leaves no lock behind; the dead connection is
    replaced at its next step."""
    import psycopg

    a, b = two_nodes
    with a.step("announcement-scheduler") as held:
        assert held
        pid = a.connection("announcement-scheduler").info.backend_pid
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with b.step("announcement-scheduler") as other:
            assert other
    with a.step("announcement-scheduler") as again:  # reconnected
        assert again
    assert a.counts.steps[("announcement-scheduler", "ran")] == 2


def test_postgres_a_hung_session_is_ended_by_the_idle_timeout(pg_url: str, tmp_path: Path) -> None:
    """A node that stops answering (its lock connection idle in its transaction, no lease
    renewal) loses the lock after ``idle_in_transaction_session_timeout``."""
    db = open_database(pg_url, tmp_path)
    hung = PgJobLocks(pg_url, lease_s=1.0)
    hung._renew_forever = lambda: None  # type: ignore[method-assign]  # the node is frozen
    other = PgJobLocks(pg_url)
    try:
        with hung.step("webhook-claim") as held:
            assert held
            with other.step("webhook-claim") as now:
                assert not now
            freed = threading.Event()
            for _ in range(600):  # generous: the server checks the timeout about every second
                with other.step("webhook-claim") as now:
                    if now:
                        freed.set()
                        break
                freed.wait(0.1)
            assert freed.is_set()
    finally:
        hung.close()
        other.close()
        db.close()


def test_postgres_a_step_longer_than_the_lease_keeps_its_lock(pg_url: str, tmp_path: Path) -> None:
    """The lease thread keeps a live node's long step from the idle timeout."""
    db = open_database(pg_url, tmp_path)
    slow, other = PgJobLocks(pg_url, lease_s=3.0), PgJobLocks(pg_url)
    try:
        with slow.step("retention-purge") as held:
            assert held
            pid = slow.connection("retention-purge").info.backend_pid
            time.sleep(7.0)  # more than two leases idle in the transaction
            with other.step("retention-purge") as now:
                assert not now
        assert slow.counts.steps == {("retention-purge", "ran"): 1}
        assert slow.connection("retention-purge").info.backend_pid == pid  # never lost
    finally:
        slow.close()
        other.close()
        db.close()


def test_postgres_a_periodic_step_runs_once_per_period_across_nodes(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
) -> None:
    a, b = two_nodes
    with a.step("retention-purge", every_s=3600) as held:
        assert held
    with b.step("retention-purge", every_s=3600) as held:
        assert not held  # a ran it less than a period ago
    with a.step("retention-purge", every_s=3600) as held:
        assert not held
    with a.step("retention-purge", every_s=0.001) as held:
        assert held  # due again (a period of 1 ms)
    assert b.counts.steps == {("retention-purge", "skipped"): 1}


def test_postgres_a_failed_periodic_step_is_not_recorded(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
) -> None:
    a, b = two_nodes
    with pytest.raises(Boom), a.step("retention-purge", every_s=3600) as held:
        assert held
        raise Boom
    with b.step("retention-purge", every_s=3600) as held:
        assert held  # the failed run was rolled back: still due


def test_postgres_steps_of_one_job_in_one_process_wait_their_turn(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
) -> None:
    a, _ = two_nodes
    inside, release = threading.Event(), threading.Event()
    results: list[bool] = []

    def first() -> None:
        with a.step("keyword-match") as held:
            results.append(held)
            inside.set()
            release.wait(30)

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(30)

    def second() -> None:
        with a.step("keyword-match") as held:
            results.append(held)

    t2 = threading.Thread(target=second)
    t2.start()
    for _ in range(300):
        if a.counts.waits["keyword-match"]:
            break
        inside.wait(0.1)
    release.set()
    t.join(30)
    t2.join(30)
    assert results == [True, True]
    assert a.counts.waits["keyword-match"] == 1


def test_the_purge_command_refuses_while_a_node_purges(
    two_nodes: tuple[PgJobLocks, PgJobLocks],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from voice_server.cli import main

    monkeypatch.setenv("VOICE_DATABASE_URL", pg_url)
    node, _ = two_nodes
    purge = ["purge", "--data-dir", str(tmp_path)]
    with node.step("retention-purge") as held:
        assert held
        assert main(purge) != 0
        assert "a node is purging now" in capsys.readouterr().err
        assert main([*purge, "--dry-run"]) == 0  # counting changes nothing
    assert main(purge) == 0
