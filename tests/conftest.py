"""Fixtures shared by every test folder: property tests without deadlines; a real PostgreSQL
for the store tests (started once per session, only when a test asks for it; skipped with a
reason when it is not installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from voice_server.bench.pgserver import PgServer, find_bindir, running_postgres

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
