"""The shared store on PostgreSQL: connections, start-up checks and migrations.

psycopg (pip extra ``[postgres]``) is imported here only, and only when a PostgreSQL URL is
used: the server on SQLite and every CLI parser start without it. Like
:class:`voice_server.store.database.Database`, one connection per thread (autocommit; explicit
transactions with :meth:`PgDatabase.transaction`), checked and migrated once.

Every failure to reach or use the database is a :class:`DatabaseError` whose message is one line
with the password hidden: the CLI prints it and exits non-zero before anything starts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voice_server.store.database import DatabaseError
from voice_server.store.dburl import redact
from voice_server.store.pg_schema import MIGRATION_LOCK, MIGRATIONS

if TYPE_CHECKING:
    import psycopg

__all__ = ["CheckReport", "PgDatabase", "check", "connect", "migrate", "schema_version"]

CONNECT_TIMEOUT_S = 10


def _driver() -> Any:
    try:
        import psycopg
    except ImportError:
        raise DatabaseError(
            "a postgresql:// database_url needs psycopg: pip install 'voice-server[postgres]'"
        ) from None
    return psycopg


def one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines) or type(exc).__name__
    return text.replace("FATAL:  ", "").replace("ERROR:  ", "")


def connect(url: str) -> psycopg.Connection[Any]:
    driver = _driver()
    try:
        conn: psycopg.Connection[Any] = driver.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="voice-server"
        )
    except (driver.Error, ValueError) as exc:
        raise DatabaseError(f"cannot connect to {redact(url)}: {one_line(exc)}") from None
    return conn


def schema_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT to_regclass('voice_schema') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return 0
    got = conn.execute("SELECT version FROM voice_schema").fetchone()
    return int(got[0]) if got else 0


@dataclass(frozen=True, slots=True)
class CheckReport:
    server_version: str
    ctype: str
    encoding: str
    trgm: str | None  # pg_trgm's version in this database (None: not installed)
    schema: int  # migrations applied
    code: int  # migrations this program knows
    japanese_trigrams: bool | None = None  # show_trgm('会議室') non-empty (None: no pg_trgm)

    @property
    def problems(self) -> list[str]:
        out: list[str] = []
        if self.encoding.upper() != "UTF8":
            out.append(f"database encoding is {self.encoding}: it must be UTF8")
        ctype = self.ctype.lower().replace("-", "")
        if "utf8" not in ctype:
            out.append(
                f"database LC_CTYPE is {self.ctype!r}: pg_trgm finds no Japanese trigrams in a "
                "non-UTF-8 locale; create the database with LC_CTYPE 'C.UTF-8' (README PostgreSQL)"
            )
        if self.schema > self.code:
            out.append(
                f"database schema version {self.schema} is newer than this program ({self.code})"
            )
        elif self.schema > 0 and self.trgm is None:
            out.append("extension pg_trgm is missing: run voice-server db migrate")
        elif self.japanese_trigrams is False and not out:
            out.append(
                f"pg_trgm finds no trigrams in Japanese text with LC_CTYPE {self.ctype!r}: "
                "create the database with LC_CTYPE 'C.UTF-8' (README PostgreSQL)"
            )
        return out


def check(conn: psycopg.Connection[Any]) -> CheckReport:
    """What ``db check`` and the start-up look at (reads only)."""
    row = conn.execute(
        "SELECT current_setting('server_version'), datctype, pg_encoding_to_char(encoding) "
        "FROM pg_database WHERE datname = current_database()"
    ).fetchone()
    assert row is not None
    trgm = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'").fetchone()
    japanese = None
    if trgm:
        got = conn.execute("SELECT cardinality(show_trgm('会議室'))").fetchone()
        japanese = bool(got and got[0])
    return CheckReport(
        server_version=str(row[0]),
        ctype=str(row[1]),
        encoding=str(row[2]),
        trgm=str(trgm[0]) if trgm else None,
        schema=schema_version(conn),
        code=len(MIGRATIONS),
        japanese_trigrams=japanese,
    )


def migrate(conn: psycopg.Connection[Any]) -> int:
    """Refuse a database this program must not use (one line), then apply pending migrations,
    each in its own transaction under an advisory lock; return the schema version."""
    driver = _driver()
    report = check(conn)
    if report.problems:
        raise DatabaseError(report.problems[0])
    try:
        with conn.transaction():  # under the lock: CREATE … IF NOT EXISTS races otherwise
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS voice_schema ("
                "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
            )
            conn.execute("INSERT INTO voice_schema VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    except driver.Error as exc:
        raise DatabaseError(f"cannot create the schema table: {one_line(exc)}") from None
    for index in range(report.schema, len(MIGRATIONS)):
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                if schema_version(conn) > index:  # another process migrated meanwhile
                    continue
                conn.execute(MIGRATIONS[index].encode())
                conn.execute("UPDATE voice_schema SET version = %s", (index + 1,))
        except driver.Error as exc:
            raise DatabaseError(f"migration {index + 1} failed: {one_line(exc)}") from None
    return len(MIGRATIONS)


class PgDatabase:
    """One PostgreSQL database; a connection per thread, opened lazily, checked and migrated
    once (:meth:`open` does that eagerly, for a start-up that fails before anything starts)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()
        self._lock = threading.Lock()
        self._migrated = False
        self._all: list[psycopg.Connection[Any]] = []

    def describe(self) -> str:
        return redact(self.url)

    def open(self) -> PgDatabase:
        self._conn()
        return self

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or conn.broken):
            with self._lock:  # a server restart or a killed backend: a new connection
                if conn in self._all:
                    self._all.remove(conn)
            conn.close()
            conn = None
        if conn is None:
            conn = connect(self.url)
            with self._lock:
                if not self._migrated:
                    try:
                        migrate(conn)
                    except DatabaseError:
                        conn.close()
                        raise
                    self._migrated = True
                self._all.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        yield self._conn()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._conn()
        with conn.transaction():
            yield conn

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
