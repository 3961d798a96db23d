"""Accounts, assignments, the directory, sessions, codes, throttling and the audit log on a real
SQLite file and on PostgreSQL (no server)."""

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BACKENDS, database
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.accounts.users import Assignment
from voice_server.accounts.validate import AccountError
from voice_server.identity.principal import DirectoryRefusal, still_allowed
from voice_server.identity.tokens import Role
from voice_server.store.channels import ChannelError, ChannelStore

BY = Caller("cli:test", "cli", "local")


@pytest.fixture(params=BACKENDS)
def accounts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Accounts]:
    with database(request.param, tmp_path, request) as db:
        acc = Accounts.open(db)
        acc.service.add_channel(BY, "ops", display_name="運用")
        acc.service.add_channel(BY, "hq")
        yield acc


def test_the_directory_trusts_tokens_until_the_first_account(accounts: Accounts) -> None:
    assert accounts.directory.lookup("anyone") is None
    accounts.service.add_user(BY, "sato", "staff", display_name="佐藤", channels=["ops"])
    with pytest.raises(DirectoryRefusal) as refused:
        accounts.directory.lookup("anyone")
    assert refused.value.reason == "unknown"
    record = accounts.directory.lookup("sato")
    assert record is not None and record.enabled and record.role is Role.STAFF
    assert record.channels == ("ops",) and record.display_name == "佐藤"


def test_supervising_a_channel_lets_one_join_it_staff_cannot_supervise(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "boss", "supervisor")
    accounts.service.add_user(BY, "sato", "staff")
    accounts.service.assign(BY, "hq", "boss", Assignment.SUPERVISOR)
    accounts.service.assign(BY, "ops", "boss", Assignment.MEMBER)
    record = accounts.directory.lookup("boss")
    assert record is not None and record.channels == ("hq", "ops") and record.supervised == ("hq",)
    with pytest.raises(AccountError, match="staff"):
        accounts.service.assign(BY, "ops", "sato", Assignment.SUPERVISOR)
    with pytest.raises(AccountError, match="no channel"):
        accounts.service.assign(BY, "nope", "sato", Assignment.MEMBER)


def test_every_directory_change_moves_the_revision(accounts: Accounts) -> None:
    seen = [accounts.directory.revision()]
    accounts.service.add_user(BY, "sato", "staff")
    seen.append(accounts.directory.revision())
    accounts.service.assign(BY, "ops", "sato", Assignment.MEMBER)
    seen.append(accounts.directory.revision())
    accounts.service.unassign(BY, "ops", "sato", Assignment.MEMBER)
    seen.append(accounts.directory.revision())
    accounts.service.set_enabled(BY, "sato", False)
    seen.append(accounts.directory.revision())
    accounts.service.assign(BY, "hq", "sato", Assignment.MEMBER)
    accounts.service.remove_channel(BY, "hq")  # the membership goes with the channel
    seen.append(accounts.directory.revision())
    assert seen == sorted(set(seen)) and len(seen) == 6


def test_disabled_or_unassigned_users_fail_the_live_session_recheck(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "sato", "staff", channels=["ops"])
    assert still_allowed("ops", accounts.directory.lookup("sato")) is None
    assert still_allowed("hq", accounts.directory.lookup("sato")) == "channel"
    accounts.service.set_enabled(BY, "sato", False)
    assert still_allowed("ops", accounts.directory.lookup("sato")) == "disabled"


def test_nobody_disables_themself_or_the_last_admin(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "root", "admin")
    with pytest.raises(AccountError, match="yourself"):
        accounts.service.set_enabled(Caller("root", "admin"), "root", False)
    with pytest.raises(AccountError, match="last enabled admin"):
        accounts.service.set_enabled(BY, "root", False)
    accounts.service.add_user(BY, "root2", "admin")
    accounts.service.set_enabled(BY, "root", False)


def test_disabling_and_password_reset_revoke_web_sessions(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "sato", "staff", password="correct horse")
    raw, _ = accounts.sessions.create("sato", via="password", address="x", ttl=60, now=1000.0)
    assert accounts.sessions.resolve(raw, 1001.0) is not None
    assert accounts.sessions.resolve(raw, 1061.0) is None  # expired
    accounts.service.set_password(BY, "sato", "battery staple")
    assert accounts.sessions.resolve(raw, 1001.0) is None
    raw, _ = accounts.sessions.create("sato", via="password", address="x", ttl=60, now=1000.0)
    accounts.service.set_enabled(BY, "sato", False)
    assert accounts.sessions.resolve(raw, 1001.0) is None
    assert accounts.sessions.resolve("garbage", 1001.0) is None


def test_an_ended_session_says_whether_it_expired_or_was_revoked(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "sato", "staff", password="correct horse")
    raw, _ = accounts.sessions.create("sato", via="code", address="x", ttl=30, now=1000.0)
    assert accounts.sessions.ended(raw, 1010.0) is None  # live
    assert accounts.sessions.ended(raw, 1030.0) == ("sato", "expired")
    accounts.sessions.revoke(raw)
    assert accounts.sessions.ended(raw, 1010.0) == ("sato", "revoked")
    assert accounts.sessions.ended("garbage", 1010.0) is None
    assert accounts.sessions.ended("x" * 500, 1010.0) is None


def test_a_sign_in_code_works_once_and_only_before_it_expires(accounts: Accounts) -> None:
    accounts.service.add_user(BY, "sato", "staff")
    with accounts.service._db.transaction() as conn:
        code = accounts.codes.create(conn, "sato", "root", 60, 1000.0)
        late = accounts.codes.create(conn, "sato", "root", 60, 1000.0)
    assert accounts.codes.redeem(code.lower(), 1001.0) == "sato"
    assert accounts.codes.redeem(code, 1001.0) is None
    assert accounts.codes.redeem(late, 1061.0) is None
    assert accounts.codes.redeem("not-a-code!", 1001.0) is None


def test_throttle_locks_after_five_failures_and_a_success_clears_it(accounts: Accounts) -> None:
    keys = ["user:sato", "addr:10.0.0.1"]
    locked = [accounts.throttle.failed(keys, 100.0) for _ in range(5)]
    assert locked == [False] * 4 + [True]
    assert accounts.throttle.wait_seconds(keys, 100.0) == 30
    accounts.throttle.succeeded("user:sato")
    assert accounts.throttle.wait_seconds(keys, 100.0) == 0  # the address is below its threshold


def test_n_admin_changes_give_exactly_n_audit_rows(accounts: Accounts) -> None:
    before = accounts.audit.count()
    accounts.service.add_user(BY, "sato", "staff", password="correct horse")
    accounts.service.add_user(BY, "boss", "supervisor")
    accounts.service.assign(BY, "ops", "boss", Assignment.SUPERVISOR)
    accounts.service.unassign(BY, "ops", "boss", Assignment.SUPERVISOR)
    accounts.service.update_channel(BY, "ops", retention_days=90, legal_hold=True)
    accounts.service.set_password(BY, "sato", "battery staple")
    accounts.service.set_enabled(BY, "sato", False)
    accounts.service.set_enabled(BY, "sato", True)
    with pytest.raises(AccountError):
        accounts.service.add_user(BY, "sato", "staff")  # refused: nothing changed, no row
    assert accounts.audit.count() - before == 8
    rows = accounts.audit.page(limit=8)
    assert [r.action for r in reversed(rows)] == [
        "user.add",
        "user.add",
        "channel.assign",
        "channel.unassign",
        "channel.update",
        "user.password",
        "user.disable",
        "user.enable",
    ]
    dump = " ".join(r.details for r in rows)
    assert "correct horse" not in dump and "battery staple" not in dump
    assert accounts.audit.verify().ok


def test_the_audit_table_refuses_update_and_delete(accounts: Accounts, tmp_path: Path) -> None:
    accounts.audit.record("boss", "x", "y")
    pg_url = getattr(accounts.audit._db, "pg_url", None)
    if pg_url is not None:
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as pg:
            for statement in (
                "UPDATE audit_log SET actor = 'mallory'",
                "DELETE FROM audit_log",
                "TRUNCATE audit_log",
            ):
                with pytest.raises(psycopg.Error, match="append-only"):
                    pg.execute(statement)
        return
    conn = sqlite3.connect(tmp_path / "voice.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_channels_keep_japanese_names_and_refuse_duplicates(accounts: Accounts) -> None:
    store = ChannelStore(accounts.audit._db)
    assert store.get("ops") is not None and store.get("ops").display_name == "運用"  # type: ignore[union-attr]
    with pytest.raises(ChannelError, match="already exists"):
        store.add("ops")
    store.add("extra", "追加")  # the failed insert left the database usable
    assert [c.name for c in store.list()] == ["extra", "hq", "ops"]
    store.remove("extra")
    with pytest.raises(ChannelError, match="no channel"):
        store.remove("extra")


def test_writers_on_two_connections_keep_one_audit_chain(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Four threads, each with its own database handle (as separate processes would be), append
    concurrently: every entry is there once and the chain verifies."""
    from voice_server.audit.log import AuditLog

    with database("postgres", tmp_path, request) as first:
        from voice_server.backends.seam import open_database

        others = [open_database(first.pg_url, tmp_path) for _ in range(3)]
        logs = [AuditLog(db) for db in (first, *others)]
        errors: list[BaseException] = []

        def write(log: AuditLog, n: int) -> None:
            try:
                for i in range(25):
                    log.record(f"w{n}", "test.append", f"item:{i}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(log, n)) for n, log in enumerate(logs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors and logs[0].count() == 100
        assert [e.seq for e in logs[0].iter_all()] == list(range(1, 101))
        assert logs[0].verify().ok
        for db in others:
            db.close()


def test_audit_record_is_the_api_for_later_call_log_reads(accounts: Accounts) -> None:
    entry = accounts.audit.record(
        "boss", "calllog.search", "channel:ops", {"query": "漏れ", "results": 3}, "ok"
    )
    assert entry.seq == accounts.audit.count() and accounts.audit.verify().ok
    with pytest.raises(ValueError):
        accounts.audit.record("boss", "x", "y", {"token": "eyJ..."})


def test_the_hub_looks_everyone_up_in_one_pass(accounts: Accounts) -> None:
    from voice_server.identity.principal import lookup_all

    accounts.service.add_user(BY, "sato", "staff", channels=["ops"])
    verdicts = lookup_all(accounts.directory, {"sato", "ghost"})
    assert verdicts["ghost"] == "unknown"
    record = verdicts["sato"]
    assert not isinstance(record, str) and record is not None and record.channels == ("ops",)
