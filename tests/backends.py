"""Stores on either backend for the tests that run on both (``sqlite``: a file in a temporary
folder; ``postgres``: a fresh database on the session's test PostgreSQL, see conftest)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["sqlite", "postgres"]


@contextmanager
def call_log(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new, empty call log (SqliteCallLog or PgCallLog)."""
    if kind == "sqlite":
        from voice_server.calllog.sqlite import SqliteCallLog
        from voice_server.store.database import Database

        db = Database(folder / "voice.db")
        yield SqliteCallLog(db)
        db.close()
        return
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    pg = PgDatabase(request.getfixturevalue("pg_server").new_database()).open()
    try:
        yield PgCallLog(pg)
    finally:
        pg.close()


@contextmanager
def database(kind: str, folder: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A new, empty, migrated database of accounts, channels and the audit chain (a ``Database``
    on SQLite or a ``PgCompatDatabase``); ``.pg_url`` is set on PostgreSQL."""
    from voice_server.backends.seam import open_database

    if kind == "sqlite":
        db = open_database(None, folder)
        yield db
        db.close()
        return
    url = request.getfixturevalue("pg_server").new_database()
    db = open_database(url, folder)
    db.pg_url = url
    try:
        yield db
    finally:
        db.close()


def queuing_blocked(conn: Any) -> bool:
    """Whether a backend waits on a lock to queue a transcription job (a fresh snapshot: in a
    transaction, pg_stat_activity is read once otherwise)."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return bool(
        conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO transcription_job%%'"
        ).fetchone()
    )
