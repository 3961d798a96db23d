"""``voice-server db check|migrate``: the database of ``database_url`` (default: SQLite in the
data directory). Building the parser imports no database driver.

``check`` reads only: PostgreSQL's server version, the database's encoding and ``LC_CTYPE``
(a ``C`` locale is refused: pg_trgm finds no Japanese trigrams there), ``pg_trgm``, and the
schema version against this program's (newer: refused; older: ``migrate`` pending).
``migrate`` applies pending migrations (the server also does at start). Every refusal is one
line and exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from voice_server.config import Config
from voice_server.store.database import DatabaseError

__all__ = ["COMMAND", "add_parser", "run"]

COMMAND = "db"


def add_parser(
    sub: Any,
    parser_class: type[argparse.ArgumentParser],
    state: Callable[[argparse.ArgumentParser], None],
) -> None:
    db = sub.add_parser("db", help="the database: check it, migrate it")
    dsub = db.add_subparsers(dest="action", required=True, parser_class=parser_class)
    for action, text in (
        ("check", "check locale, extensions and schema version (changes nothing)"),
        ("migrate", "apply pending schema migrations"),
    ):
        p = dsub.add_parser(action, help=text)
        state(p)
        p.add_argument("--database-url", help="sqlite:PATH or postgresql://… (default: config)")
    cp = dsub.add_parser("copy", help="copy a SQLite deployment into an empty PostgreSQL database")
    state(cp)
    cp.add_argument("--from", dest="source", required=True, help="sqlite:PATH")
    cp.add_argument("--to", dest="target", required=True, help="postgresql://…")


def run(args: argparse.Namespace, config: Config) -> int:
    if args.action == "copy":
        return _copy(args.source, args.target)
    target = config.database
    print(f"database {target.describe()}")
    if target.kind == "sqlite":
        return _sqlite(args.action, config)
    assert target.url is not None
    return _postgres(args.action, target.url)


def _sqlite(action: str, config: Config) -> int:
    from voice_server.store.database import MIGRATIONS, connect, migrate

    path = config.database_path
    if action == "check" and not path.exists():
        raise DatabaseError(f"no database at {path} (the server or db migrate creates it)")
    conn = connect(path)
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if action == "migrate":
            version = migrate(conn)
    finally:
        conn.close()
    return _schema_line(version, len(MIGRATIONS))


def _postgres(action: str, url: str) -> int:
    from voice_server.store.pg import check, connect, migrate

    conn = connect(url)
    try:
        report = check(conn)
        print(f"server PostgreSQL {report.server_version}")
        print(f"encoding {report.encoding}, LC_CTYPE {report.ctype}")
        if action == "migrate":
            migrate(conn)  # refuses what check would (one line)
            report = check(conn)
        japanese = ""
        if report.japanese_trigrams is not None:
            japanese = ", Japanese trigrams " + ("ok" if report.japanese_trigrams else "none")
        print(f"pg_trgm {report.trgm or 'not installed'}{japanese}")
        if report.problems:
            raise DatabaseError(report.problems[0])
    finally:
        conn.close()
    return _schema_line(report.schema, report.code)


def _schema_line(version: int, code: int) -> int:
    if version > code:
        raise DatabaseError(
            f"database schema version {version} is newer than this program ({code})"
        )
    pending = (
        f", {code - version} migration(s) pending: voice-server db migrate"
        if version < code
        else ""
    )
    print(f"schema version {version} (this program: {code}){pending}")
    return 0


def _copy(source: str, target: str) -> int:
    from pathlib import Path

    from voice_server.backends.copy import copy_sqlite_to_postgres
    from voice_server.store.dburl import target_of
    from voice_server.store.pg import PgDatabase

    try:
        src, dst = target_of(source, Path()), target_of(target, Path())
    except ValueError as exc:
        raise DatabaseError(f"db copy: {exc}") from None
    if src.kind != "sqlite" or dst.kind != "postgresql":
        raise DatabaseError("db copy: --from sqlite:PATH --to postgresql://…")
    assert src.path is not None and dst.url is not None
    pg = PgDatabase(dst.url).open()
    try:
        report = copy_sqlite_to_postgres(src.path, pg)
    finally:
        pg.close()
    print(f"copied {src.describe()} to {dst.describe()}")
    for table, n in report.rows.items():
        print(f"  {table}: {n} rows")
    if report.missing_clips:
        print(f"  {report.missing_clips} committed rows name a clip file that is not in the data "
              "directory: their audio cannot be played")  # fmt: skip
    return 0
