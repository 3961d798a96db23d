"""The store seam: which backend serves each store, from ``database_url``.

SQLite (the default, ``make run``) needs nothing more; PostgreSQL is imported only here, and only
when a ``postgresql://`` URL is configured. On PostgreSQL: the call log
(:class:`~voice_server.calllog.postgres.PgCallLog`), and accounts, channels and the audit chain
and alerts, webhooks, announcements (with who heard them) and scheduled announcements (their
SQLite stores' own code over :class:`~voice_server.store.pgcompat.PgCompatDatabase`), the
retention purge's database side, the transcription job queue
(:mod:`voice_server.calllog.jobqueue`), clips (:mod:`voice_server.calllog.clips`: announcement
clips too), and the process's LISTEN connection (:func:`open_notifications`: alerts are woken by
NOTIFY), and the periodic jobs' locks (:func:`open_job_locks`: each runs once per deployment).
The ASR phrase list chooses its store itself
(:mod:`voice_server.transcribe.phrase_store`: this module sits below ``transcribe``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from voice_server.calllog.clips import ClipStore
from voice_server.calllog.jobqueue import JobQueue
from voice_server.calllog.purge_store import PurgeStore
from voice_server.calllog.store import CallLog
from voice_server.store.database import Database, migrate
from voice_server.store.dburl import target_of
from voice_server.store.job_lock import JobLocks, LocalJobLocks

if TYPE_CHECKING:
    from voice_server.store.pg_notify import PgNotifications

__all__ = [
    "is_postgres",
    "open_call_log",
    "open_clip_store",
    "open_database",
    "open_job_locks",
    "open_job_queue",
    "open_notifications",
    "purge_store",
    "verify",
]


def is_postgres(database_url: str | None) -> bool:
    return target_of(database_url, Path()).kind == "postgresql"


def open_database(database_url: str | None, data_dir: Path) -> Database:
    """The database of accounts, channels and the audit chain, migrated. On PostgreSQL it is
    reached, checked and migrated here (DatabaseError, one line, when it cannot be used)."""
    target = target_of(database_url, data_dir)
    if target.kind == "postgresql":
        from voice_server.store.pg import PgDatabase
        from voice_server.store.pgcompat import PgCompatDatabase

        assert target.url is not None
        return PgCompatDatabase(PgDatabase(target.url).open())
    assert target.path is not None
    db = Database(target.path)
    with db.connection() as conn:
        migrate(conn)
    return db


def open_call_log(database_url: str | None, data_dir: Path, db: Database | None = None) -> CallLog:
    """The call log of this deployment, sharing ``db``'s connections when given."""
    target = target_of(database_url, data_dir)
    if target.kind == "postgresql":
        from voice_server.calllog.postgres import PgCallLog
        from voice_server.store.pg import PgDatabase
        from voice_server.store.pgcompat import PgCompatDatabase

        assert target.url is not None
        if isinstance(db, PgCompatDatabase):
            return PgCallLog(db.pg)
        return PgCallLog(PgDatabase(target.url).open())
    from voice_server.calllog.sqlite import SqliteCallLog

    assert target.path is not None
    return SqliteCallLog(db if db is not None else Database(target.path))


def open_clip_store(db: Database, data_dir: Path) -> ClipStore:
    """Where clips are read from: the data directory, and on PostgreSQL its ``clip`` table."""
    from voice_server.calllog.clips import FsClipStore
    from voice_server.store.pgcompat import PgCompatDatabase

    local = FsClipStore(data_dir)
    if isinstance(db, PgCompatDatabase):
        from voice_server.calllog.clips import PgClipStore

        return PgClipStore(db.pg, local)
    return local


def open_job_queue(db: Database) -> JobQueue:
    """The transcription job queue in ``db`` (from :func:`open_database`)."""
    from voice_server.store.pgcompat import PgCompatDatabase

    if isinstance(db, PgCompatDatabase):
        from voice_server.calllog.jobqueue_pg import PgJobQueue

        return PgJobQueue(db.pg)
    from voice_server.calllog.jobqueue_sqlite import SqliteJobQueue

    return SqliteJobQueue(db)


def open_job_locks(db: Database) -> JobLocks:
    """The periodic jobs' locks: on PostgreSQL advisory transaction locks (one node runs each
    step; connections opened on first use); on SQLite one process, every step runs."""
    from voice_server.store.pgcompat import PgCompatDatabase

    if isinstance(db, PgCompatDatabase):
        from voice_server.store.job_lock import PgJobLocks

        return PgJobLocks(db.pg.url)
    return LocalJobLocks()


def open_notifications(db: Database) -> PgNotifications | None:
    """PostgreSQL: the process's LISTEN connection (not started); None on SQLite."""
    from voice_server.store.pgcompat import PgCompatDatabase

    if isinstance(db, PgCompatDatabase):
        from voice_server.store.pg_notify import PgNotifications

        return PgNotifications(db.pg.url)
    return None


def purge_store(db: Database) -> Callable[[], PurgeStore]:
    """The retention purge's database side for ``db`` (a new connection per run)."""
    from voice_server.store.pgcompat import PgCompatDatabase

    if isinstance(db, PgCompatDatabase):
        from voice_server.calllog.purge_pg import PgPurgeStore

        pg = db.pg
        return lambda: PgPurgeStore(pg)
    from voice_server.calllog.purge_store import SqlitePurgeStore

    path = db.path
    return lambda: SqlitePurgeStore(path)


def verify(database_url: str | None, data_dir: Path) -> None:
    """Before a process starts anything: a PostgreSQL database is reached, checked and migrated
    (DatabaseError, one line, when it cannot be used). SQLite is opened where it is used."""
    target = target_of(database_url, data_dir)
    if target.kind == "postgresql":
        from voice_server.store.pg import PgDatabase

        assert target.url is not None
        PgDatabase(target.url).open().close()
