"""Fixtures shared by every test folder: property tests without deadlines; a real PostgreSQL
for the store tests (started once per session, only when a test asks for it; skipped with a
reason when it is not installed); a real Redis for the cluster tests (one per test: they kill
and restart it)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from voice_server.bench.pgserver import PgServer, find_bindir, running_postgres
from voice_server.bench.redisserver import RedisServer, find_redis_server, running_redis

# Property tests never time an example: a busy machine (CI beside other work) must pass them.
settings.register_profile(
    "voice", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile("voice")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if find_bindir() is None:
        pytest.skip("PostgreSQL server not installed (scripts/install-test-deps.sh installs it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip extra [postgres])")
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database (pg_trgm installed) for one test."""
    return pg_server.new_database()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """Debian's redis-server on a free port of 127.0.0.1, no persistence; stopped after the
    test (``kill()`` + ``start()`` restart it empty on the same port)."""
    if find_redis_server() is None:
        pytest.skip("redis-server not installed (scripts/install-test-deps.sh installs it)")
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.skip("redis not installed (pip extra [cluster])")
    with running_redis() as server:
        yield server


@pytest.fixture(autouse=True)
def _cpu_priority_kept() -> Iterator[None]:
    """No test may leave the test process at a lower CPU priority (a ``transcriber`` command
    run in-process once left a worker at SCHED_IDLE: every later test and the servers it
    started, which inherit it, starved on a busy machine). Restored, then reported."""
    policy = os.sched_getscheduler(0) if hasattr(os, "sched_getscheduler") else None
    nice = os.nice(0)
    yield
    changed = []
    if policy is not None and os.sched_getscheduler(0) != policy:
        changed.append(f"scheduling policy {policy} -> {os.sched_getscheduler(0)}")
        os.sched_setscheduler(0, policy, os.sched_param(0))
    if os.nice(0) != nice:
        changed.append(f"nice {nice} -> {os.nice(0)}")
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    assert not changed, "the test lowered the test process's CPU priority: " + ", ".join(changed)
