"""The PostgreSQL store's edges: database_url parsing and redaction, one-line refusals (wrong
password, unreachable, C locale, schema newer than the code), migrations run once, the seam."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_server.bench.pgserver import PgServer
from voice_server.config import ConfigError, load_config
from voice_server.store.database import DatabaseError
from voice_server.store.dburl import redact, target_of


def test_database_url_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    config = load_config(None, data_dir=tmp_path)
    assert config.database.kind == "sqlite" and config.database_path == tmp_path / "voice.db"
    config = load_config(None, data_dir=tmp_path, database_url="sqlite:/srv/v.db")
    assert config.database_path == Path("/srv/v.db")
    pg = load_config(None, data_dir=tmp_path, database_url="postgresql://u:pw@db/voice")
    assert pg.database.kind == "postgresql" and pg.database_path == tmp_path / "voice.db"
    for bad in ("mysql://x/y", "sqlite:", "postgresql:x", "voice.db"):
        with pytest.raises(ConfigError, match="database_url"):
            load_config(None, data_dir=tmp_path, database_url=bad)


def test_passwords_never_show() -> None:
    assert (
        redact("postgresql://voice:s3cret@db:5432/voice") == "postgresql://voice:***@db:5432/voice"
    )
    assert "s3cret" not in redact("postgresql:///voice?host=/run&password=s3cret&x=1")
    assert target_of("postgresql://a:b@h/d", Path()).describe() == "postgresql://a:***@h/d"


def _refusal(url: str) -> str:
    from voice_server.backends.seam import open_call_log

    with pytest.raises(DatabaseError) as info:
        open_call_log(url, Path("/nonexistent"))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_wrong_password_or_an_unreachable_server_is_one_line(pg_server: PgServer) -> None:
    pg_server.sql("postgres", "CREATE ROLE voice_pw LOGIN PASSWORD 'right'")
    message = _refusal(pg_server.url("postgres", "voice_pw", "wrong"))
    assert "password authentication failed" in message and "wrong" not in message
    message = _refusal(f"postgresql://x:pw@/voice?host={pg_server.root}/nowhere&port=1")
    assert message.startswith("cannot connect to postgresql://x:***@")


def test_a_c_locale_and_a_newer_schema_are_refused(pg_server: PgServer) -> None:
    pg_server.sql(
        "postgres",
        "CREATE DATABASE c_locale TEMPLATE template0 ENCODING 'UTF8' LC_CTYPE 'C' LC_COLLATE 'C'",
    )
    assert "LC_CTYPE is 'C'" in _refusal(pg_server.url("c_locale"))
    import psycopg

    from voice_server.store.pg_schema import MIGRATIONS

    url = pg_server.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE voice_schema (id INTEGER PRIMARY KEY, version INTEGER)")
        conn.execute("INSERT INTO voice_schema VALUES (1, %s)", (len(MIGRATIONS) + 1,))
    assert "is newer than this program" in _refusal(url)


def test_migrations_run_once_and_the_seam_picks_postgres(pg_url: str, tmp_path: Path) -> None:
    from voice_server.backends.seam import open_call_log
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase, check, migrate
    from voice_server.store.pg_schema import MIGRATIONS

    log = open_call_log(pg_url, tmp_path)
    assert isinstance(log, PgCallLog)
    db = PgDatabase(pg_url)
    with db.connection() as conn:
        report = check(conn)
        assert report.schema == len(MIGRATIONS) and report.trgm and report.problems == []
        assert migrate(conn) == len(MIGRATIONS)
    db.close()
    assert type(open_call_log(None, tmp_path)).__name__ == "SqliteCallLog"


def _cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from voice_server.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_db_check_and_migrate_on_postgres(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    code, out, _ = _cli("db", "check", "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 0 and "pg_trgm 1." in out and "migration(s) pending" in out
    code, out, _ = _cli("db", "migrate", "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 0 and "pending" not in out and "LC_CTYPE C.UTF-8" in out
    code, out, _ = _cli("db", "check", "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 0 and "pending" not in out and "Japanese trigrams ok" in out
    pg_server.sql(
        "postgres",
        "CREATE DATABASE c_cli TEMPLATE template0 ENCODING 'UTF8' LC_CTYPE 'C' LC_COLLATE 'C'",
    )
    for action in ("check", "migrate"):
        code, _, err = _cli("db", action, "--database-url", pg_server.url("c_cli"))
        assert code == 1 and err.count("\n") == 1 and "LC_CTYPE is 'C'" in err, err
    bad = pg_server.url("postgres", "nobody", "pw")
    code, _, err = _cli("db", "check", "--database-url", bad)
    assert code == 1 and err.count("\n") == 1 and "pw@" not in err


def test_db_check_and_serve_refuse_a_database_without_pg_trgm(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.new_database()
    code, _, err = _cli("db", "migrate", "--data-dir", str(tmp_path), "--database-url", url)
    assert code == 0, err
    name = url.split("@/", 1)[1].split("?", 1)[0]
    pg_server.sql(name, "DROP EXTENSION pg_trgm CASCADE")  # its index goes with it
    code, out, err = _cli("db", "check", "--database-url", url)
    assert code == 1 and err.count("\n") == 1 and "pg_trgm is missing" in err, (out, err)
    data = tmp_path / "serve"
    code, out, err = _cli("serve", "--port", "0", "--data-dir", str(data), "--database-url", url)
    assert code == 1 and err.count("\n") == 1 and "pg_trgm is missing" in err, (out, err)
    assert "listening" not in out and not data.exists()


def test_db_check_and_migrate_on_sqlite(tmp_path: Path) -> None:
    code, _, err = _cli("db", "check", "--data-dir", str(tmp_path))
    assert code == 1 and "no database at" in err
    code, out, _ = _cli("db", "migrate", "--data-dir", str(tmp_path))
    assert code == 0 and "pending" not in out and "sqlite:" in out
    code, _, err = _cli("db", "check", "--database-url", "mysql://x")
    assert code == 2 and err.count("\n") == 1


def test_serve_refuses_an_unusable_database_before_starting_anything(
    pg_server: PgServer, tmp_path: Path
) -> None:
    bad = pg_server.url("postgres", "nobody", "pw")
    code, out, err = _cli(
        "serve", "--port", "0", "--data-dir", str(tmp_path), "--database-url", bad
    )
    assert code == 1 and err.count("\n") == 1 and "listening" not in out
    assert list(tmp_path.iterdir()) == []  # not even a signing key


def test_sqlite_start_and_the_cli_parser_import_no_database_driver(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from voice_server.cli import build_parser; build_parser(); "
        "from voice_server.config import load_config; from voice_server.app import build_state; "
        f"build_state(load_config(None, data_dir={str(tmp_path)!r})); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'asyncpg')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_server_state_and_the_admin_cli_use_postgres_for_every_store_on_main(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voice_server.app import build_state
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pgcompat import PgCompatDatabase

    monkeypatch.setenv("VOICE_DATABASE_URL", pg_url)
    code, out, err = _cli("channels", "add", "ops", "--data-dir", str(tmp_path))
    assert code == 0, err
    code, out, err = _cli("audit", "verify", "--data-dir", str(tmp_path))
    assert code == 0 and "1" in out, (out, err)
    assert not (tmp_path / "voice.db").exists()  # nothing went to SQLite
    state = build_state(load_config(None, data_dir=tmp_path))
    try:
        assert isinstance(state.calllog, PgCallLog) and isinstance(state.db, PgCompatDatabase)
        assert [c.name for c in state.channels.list()] == ["ops"]
        assert state.accounts.audit.count() == 1 and state.accounts.audit.verify().ok
    finally:
        state.db.close()
    assert not (tmp_path / "voice.db").exists()


def test_concurrent_writers_commit_each_burst_once_with_events_in_commit_order(
    pg_url: str,
) -> None:
    """Four handles (as four processes would hold) commit the same 40 bursts in different
    orders: each burst is committed once, and its event appears once, seqs increasing."""
    import random
    import threading

    from voice_server.calllog.model import Utterance, new_burst_id
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    t0 = 1_780_000_000_000
    items = [
        Utterance(new_burst_id(t0 + i), "ops", "s", "S", t0 + i, t0 + i + 5, f"報告 {i}")
        for i in range(40)
    ]
    handles = [PgDatabase(pg_url).open() for _ in range(4)]
    wins: list[str] = []
    lock = threading.Lock()

    def commit(db: PgDatabase, seed: int) -> None:
        log = PgCallLog(db)
        order = items[:]
        random.Random(seed).shuffle(order)
        for u in order:
            if log.add_utterance(u, committed_ms=t0):
                with lock:
                    wins.append(u.id)

    threads = [threading.Thread(target=commit, args=(db, n)) for n, db in enumerate(handles)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(wins) == sorted(u.id for u in items)
    events = PgCallLog(handles[0]).events_after(0, limit=1000)
    assert sorted(e.ref for e in events) == sorted(wins)
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    for db in handles:
        db.close()


def test_the_supervised_transcriber_gets_the_database_url_in_its_environment(
    tmp_path: Path,
) -> None:
    from voice_server.transcribe.supervise import TranscriberSupervisor

    url = "postgresql://voice:s3cret@db/voice"
    config = load_config(None, data_dir=tmp_path, transcriber=True, database_url=url)
    supervisor = TranscriberSupervisor.from_config(config)
    assert supervisor is not None and supervisor.env is not None
    assert supervisor.env["VOICE_DATABASE_URL"] == url
    assert not any("s3cret" in arg for arg in supervisor.argv)


def test_nodes_starting_together_migrate_once(pg_url: str) -> None:
    import threading

    from voice_server.store.pg import PgDatabase, check
    from voice_server.store.pg_schema import MIGRATIONS

    errors: list[BaseException] = []

    def start() -> None:
        try:
            PgDatabase(pg_url).open().close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    db = PgDatabase(pg_url)
    with db.connection() as conn:
        assert check(conn).schema == len(MIGRATIONS)
    db.close()


def test_the_sqlite_statements_of_the_stores_translate_to_postgres() -> None:
    from voice_server.store.pgcompat import translate

    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x%?'") == (
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%?'"
    )
    assert translate("INSERT OR IGNORE INTO m (channel, user_name) VALUES (?, ?)") == (
        "INSERT INTO m (channel, user_name) VALUES (%s, %s) ON CONFLICT DO NOTHING"
    )
    assert translate("INSERT OR REPLACE INTO login_throttle (key, failures) VALUES (?, ?);") == (
        "INSERT INTO login_throttle (key, failures) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET failures = EXCLUDED.failures"
    )
    assert "sqlite_sequence" not in translate(
        "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'"
    )
    # a composite key: the conflict target is the whole key, never the first column
    assert translate(
        "INSERT OR REPLACE INTO announcement_heard (announcement_id, channel, user_name, heard) "
        "VALUES (?, ?, ?, ?)"
    ).endswith(
        "ON CONFLICT (announcement_id, channel, user_name) DO UPDATE SET heard = EXCLUDED.heard"
    )
    with pytest.raises(ValueError, match="REPLACE_KEYS"):
        translate("INSERT OR REPLACE INTO nowhere (a, b) VALUES (?, ?)")


def test_every_insert_or_replace_of_the_code_base_has_its_tables_key(pg_url: str) -> None:
    """Each table written with ``INSERT OR REPLACE`` is in REPLACE_KEYS with its primary key as
    the PostgreSQL schema declares it (an ``ON CONFLICT`` target must match a constraint)."""
    import re

    import voice_server
    from voice_server.store.pg import PgDatabase
    from voice_server.store.pgcompat import REPLACE_KEYS

    root = Path(voice_server.__file__).parent
    written = {
        m.group(1)
        for path in root.rglob("*.py")
        for m in re.finditer(r"INSERT OR REPLACE INTO (\w+)", path.read_text(encoding="utf-8"))
    }
    assert written == set(REPLACE_KEYS)
    db = PgDatabase(pg_url).open()
    try:
        with db.connection() as conn:
            for table, key in REPLACE_KEYS.items():
                rows = conn.execute(
                    "SELECT a.attname FROM pg_index i JOIN pg_attribute a "
                    "ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                    "WHERE i.indrelid = %s::regclass AND i.indisprimary",
                    (table,),
                ).fetchall()
                assert {r[0] for r in rows} == set(key), table
    finally:
        db.close()


def test_a_transcriber_with_an_unusable_database_url_says_so_in_one_line(
    pg_server: PgServer, tmp_path: Path
) -> None:
    bad = pg_server.url("postgres", "nobody", "pw")
    argv = ("transcriber", "--server", "http://127.0.0.1:9", "--data-dir", str(tmp_path))
    code, _, err = _cli(*argv, "--database-url", bad)
    assert code == 1 and "password authentication failed" in err and "pw@" not in err


def test_a_transcriber_without_server_needs_a_postgres_database(tmp_path: Path) -> None:
    code, _, err = _cli("transcriber", "--data-dir", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "postgresql://" in err
    argv = ("transcriber", "--data-dir", str(tmp_path), "--ca-file", str(tmp_path / "ca.pem"))
    code, _, err = _cli(*argv, "--database-url", "postgresql://u@/db?host=/nowhere")
    assert code == 2 and "need --server" in err


def test_a_reader_waiting_for_commit_events_is_woken_by_another_writers_notify(
    pg_url: str,
) -> None:
    import threading
    import time

    from voice_server.calllog.model import Utterance, new_burst_id
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    reader_db, writer_db = PgDatabase(pg_url).open(), PgDatabase(pg_url).open()
    reader, writer = PgCallLog(reader_db), PgCallLog(writer_db)
    t0 = 1_780_000_000_000
    u = Utterance(new_burst_id(t0), "ops", "s", "S", t0, t0 + 5, "到着 しました")
    assert reader.wait_events(0, 0.05) == []  # nothing: back after the timeout
    timer = threading.Timer(0.5, lambda: writer.add_utterance(u, committed_ms=t0))
    timer.start()
    started = time.monotonic()
    got = reader.wait_events(0, 60)
    waited = time.monotonic() - started
    timer.join()
    assert [e.ref for e in got] == [u.id]
    assert waited < 30  # woken by the commit, not by the 60 s timeout
    reader_db.close()
    writer_db.close()


def test_a_lost_connection_fails_one_call_and_the_next_reconnects(pg_url: str) -> None:
    import psycopg

    from voice_server.calllog.model import SearchQuery
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    db = PgDatabase(pg_url).open()
    log = PgCallLog(db)
    with db.connection() as conn:
        pid = conn.info.backend_pid
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        log.search(SearchQuery())
    assert log.search(SearchQuery()).items == ()
    db.close()
