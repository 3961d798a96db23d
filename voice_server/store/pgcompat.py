"""Accounts, channels and the audit chain on PostgreSQL through the SQLite stores' own code.

Those stores were written against :class:`~voice_server.store.database.Database` and sqlite3's
connection interface. :class:`PgCompatDatabase` is a ``Database`` whose connections speak that
interface on PostgreSQL, so every store keeps one implementation and one set of tests run on
both backends. What it does (and nothing more):

- statements: ``?`` placeholders become ``%s`` (a literal ``%`` becomes ``%%``); ``INSERT OR
  IGNORE`` becomes ``ON CONFLICT DO NOTHING``; ``INSERT OR REPLACE`` an upsert on the table's
  primary key (:data:`REPLACE_KEYS`: a table missing there is refused, never guessed); the few
  SQLite-only reads are mapped one by one (:data:`REWRITES`);
- parameters: booleans go as 0/1 (the schema keeps SQLite's integer flags);
- rows: indexed by position and by column name, like ``sqlite3.Row``;
- errors: psycopg's integrity and other errors are raised as ``sqlite3.IntegrityError`` /
  ``sqlite3.OperationalError``; a failed statement inside a transaction rolls back to a savepoint
  taken before it, so a caller that catches it goes on as on SQLite;
- transactions: every write transaction first takes one advisory lock
  (:data:`~voice_server.store.pg_schema.AUDIT_LOCK`), as ``BEGIN IMMEDIATE`` does on SQLite:
  one writer at a time, so the audit chain has one append order across every process (the chain
  head is read under the lock) and read-check-write rules (the last enabled admin) hold.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from voice_server.store.database import Database
from voice_server.store.pg import PgDatabase
from voice_server.store.pg_schema import AUDIT_LOCK

__all__ = ["REPLACE_KEYS", "REWRITES", "PgCompatDatabase", "translate"]

REWRITES = {
    # audit/log.py: seq never reused; the log is append-only, so the largest seq is the last one
    "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'": (
        "SELECT max(seq) FROM audit_log HAVING count(*) > 0"
    ),
}
# The primary key of every table written with ``INSERT OR REPLACE`` (PostgreSQL's ``ON CONFLICT``
# needs the constraint's columns; a test checks these against the schema and the code base)
REPLACE_KEYS: dict[str, tuple[str, ...]] = {
    "alert_cursor": ("name",),
    "announcement_heard": ("announcement_id", "channel", "user_name"),
    "login_throttle": ("key",),
}
_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """A statement of the SQLite stores in PostgreSQL's dialect (pure)."""
    sql = REWRITES.get(sql, sql)
    conflict = ""
    m = _INSERT_OR.match(sql)
    if m:
        kind, table, cols = (
            m.group(1).upper(),
            m.group(2),
            [c.strip() for c in m.group(3).split(",")],
        )
        sql = f"INSERT INTO {table} ({', '.join(cols)})" + sql[m.end() :]
        if kind == "IGNORE":
            conflict = " ON CONFLICT DO NOTHING"
        else:
            key = REPLACE_KEYS.get(table)
            if key is None:
                raise ValueError(f"INSERT OR REPLACE INTO {table}: its key is not in REPLACE_KEYS")
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in key)
            action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
            conflict = f" ON CONFLICT ({', '.join(key)}) {action}"
    out: list[str] = []
    quote = False
    for ch in sql:
        if ch == "'":
            quote = not quote
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quote:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out).rstrip().rstrip(";") + conflict


class CompatRow(tuple[Any, ...]):
    """A row read by position or by column name (like ``sqlite3.Row``)."""

    _names: dict[str, int]

    def __new__(cls, names: dict[str, int], values: Sequence[Any]) -> CompatRow:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}
    return lambda values: CompatRow(names, values)


def _params(params: Sequence[Any] | None) -> tuple[Any, ...]:
    return tuple(int(p) if isinstance(p, bool) else p for p in (params or ()))


class CompatCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.rowcount: int = cursor.rowcount

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return list(self._cursor.fetchall()) if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class CompatConnection:
    """sqlite3's connection interface over one psycopg connection (see the module doc)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.in_transaction = False

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> CompatCursor:
        import psycopg

        cursor = self._conn.cursor(row_factory=_row_factory)
        try:
            if self.in_transaction:
                with self._conn.transaction():  # a savepoint: a failure leaves the rest intact
                    cursor.execute(translate(sql), _params(params))
            else:
                cursor.execute(translate(sql), _params(params))
        except psycopg.IntegrityError as exc:
            raise sqlite3.IntegrityError(str(exc).splitlines()[0]) from None
        except psycopg.Error as exc:
            raise sqlite3.OperationalError(str(exc).splitlines()[0] if str(exc) else "") from None
        return CompatCursor(cursor)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            self.execute(sql, row)


class PgCompatDatabase(Database):
    """A :class:`Database` on PostgreSQL (accounts, channels, audit)."""

    def __init__(self, pg: PgDatabase) -> None:
        super().__init__(Path("/nonexistent/postgresql"))
        self.pg = pg

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self.pg.connection() as conn:
            yield cast(sqlite3.Connection, CompatConnection(conn))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.pg.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (AUDIT_LOCK,))
            compat = CompatConnection(conn)
            compat.in_transaction = True
            yield cast(sqlite3.Connection, compat)

    def close(self) -> None:
        self.pg.close()
