"""What `serve` prints at start-up about its store: the database it uses (SQLite's path, or the
PostgreSQL URL with its password hidden), so an administrator sees at once where the call log
goes, and a password never reaches a terminal or a log file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import running_server
from voice_server.bench.pgserver import PgServer

pytestmark = pytest.mark.integration


def banner(log: str) -> str:
    (line,) = [ln for ln in log.splitlines() if ln.startswith("  database ")]
    return line


def test_the_banner_names_sqlite_by_default(tmp_path: Path) -> None:
    with running_server(tmp_path, channels=()) as server:
        assert banner(server.log()) == f"  database sqlite:{tmp_path / 'voice.db'}"


def test_the_banner_names_postgresql_without_its_password(
    pg_server: PgServer, pg_url: str, tmp_path: Path
) -> None:
    db = pg_url.split("@/", 1)[1].split("?", 1)[0]
    pg_server.sql("postgres", f"CREATE ROLE banner_{db} LOGIN PASSWORD 'hush-s3cret'")
    pg_server.sql("postgres", f'ALTER DATABASE "{db}" OWNER TO banner_{db}')
    url = pg_server.url(db, f"banner_{db}", "hush-s3cret")
    with running_server(tmp_path, env={"VOICE_DATABASE_URL": url}, channels=()) as server:
        line = banner(server.log())
        assert line.startswith(f"  database postgresql://banner_{db}:***@/{db}?host="), line
        assert "hush-s3cret" not in server.log()
