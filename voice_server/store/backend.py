"""The store seam: which backend serves a store, from ``database_url``.

SQLite (the default, ``make run``) needs nothing more; PostgreSQL is imported only here, and only
when a ``postgresql://`` URL is configured. On PostgreSQL today: the call log. Accounts, channels
and the audit chain follow the same seam (README "PostgreSQL": what is there yet).
"""

from __future__ import annotations

from pathlib import Path

from voice_server.calllog.store import CallLog
from voice_server.store.database import Database
from voice_server.store.dburl import target_of

__all__ = ["open_call_log", "verify"]


def open_call_log(
    database_url: str | None, data_dir: Path, sqlite: Database | None = None
) -> CallLog:
    """The call log of this deployment. On PostgreSQL the database is reached, checked and
    migrated here (DatabaseError, one line, when it cannot be used); on SQLite ``sqlite`` is
    reused when given."""
    target = target_of(database_url, data_dir)
    if target.kind == "postgresql":
        from voice_server.calllog.postgres import PgCallLog
        from voice_server.store.pg import PgDatabase

        assert target.url is not None
        return PgCallLog(PgDatabase(target.url).open())
    from voice_server.calllog.sqlite import SqliteCallLog

    assert target.path is not None
    return SqliteCallLog(sqlite if sqlite is not None else Database(target.path))


def verify(database_url: str | None, data_dir: Path) -> None:
    """Before a process starts anything: a PostgreSQL database is reached, checked and migrated
    (DatabaseError, one line, when it cannot be used). SQLite is opened where it is used."""
    target = target_of(database_url, data_dir)
    if target.kind == "postgresql":
        from voice_server.store.pg import PgDatabase

        assert target.url is not None
        PgDatabase(target.url).open().close()
