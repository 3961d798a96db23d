"""``voice-server users|channels|audit``: in-process through ``cli.main(argv)``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.backends import BACKENDS
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.passwords import verify_password
from voice_server.backends.seam import open_database
from voice_server.cli import main
from voice_server.demo import DEMO_USERS, demo_password, ensure_demo_organisation
from voice_server.identity.keys import load_or_create_key
from voice_server.store.database import Database


def run(tmp: Path, *argv: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch) -> int:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main([*argv, "--data-dir", str(tmp)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_users_and_channels_from_the_command_line(
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    mp = monkeypatch
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    if url is not None:  # as an operator does (the URL's password kept out of argv)
        mp.setenv("VOICE_DATABASE_URL", url)
    assert run(tmp_path, "channels", "add", "ops", "--display-name", "運用", monkeypatch=mp) == 0
    assert (
        run(
            tmp_path,
            "users",
            "add",
            "Root",
            "--role",
            "admin",
            "--password-stdin",
            stdin="s3cret-pass\n",
            monkeypatch=mp,
        )
        == 0
    )
    assert (
        run(
            tmp_path,
            "users",
            "add",
            "sato",
            "--role",
            "staff",
            "--display-name",
            "佐藤",
            "--channel",
            "ops",
            "--no-password",
            monkeypatch=mp,
        )
        == 0
    )
    assert (
        run(
            tmp_path,
            "users",
            "add",
            "boss",
            "--role",
            "supervisor",
            "--no-password",
            monkeypatch=mp,
        )
        == 0
    )
    assert run(tmp_path, "channels", "assign", "ops", "--supervisor", "boss", monkeypatch=mp) == 0
    assert (
        run(
            tmp_path,
            "channels",
            "add",
            "hq",
            "--supervisor",
            "boss",
            "--member",
            "sato",
            monkeypatch=mp,
        )
        == 0
    )
    assert run(tmp_path, "channels", "unassign", "hq", "--member", "sato", monkeypatch=mp) == 0
    assert (
        run(
            tmp_path,
            "channels",
            "set",
            "ops",
            "--retention-days",
            "90",
            "--legal-hold",
            "on",
            monkeypatch=mp,
        )
        == 0
    )
    assert run(tmp_path, "users", "disable", "sato", monkeypatch=mp) == 0
    capsys.readouterr()
    assert run(tmp_path, "users", "list", "--json", monkeypatch=mp) == 0
    users = {u["name"]: u for u in json.loads(capsys.readouterr().out)}
    assert users["root"]["role"] == "admin" and users["sato"]["display_name"] == "佐藤"
    assert users["sato"]["enabled"] is False and users["sato"]["member_of"] == ["ops"]
    assert users["boss"]["supervises"] == ["hq", "ops"]
    assert run(tmp_path, "channels", "list", "--json", monkeypatch=mp) == 0
    chans = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert chans["ops"]["retention_days"] == 90 and chans["ops"]["legal_hold"] is True
    assert chans["hq"]["members"] == []
    db = open_database(url, tmp_path)
    accounts = Accounts.open(db)
    assert verify_password(accounts.users.password_hash("root"), "s3cret-pass")
    assert (
        run(
            tmp_path,
            "users",
            "passwd",
            "root",
            "--password-stdin",
            stdin="new-pass-1\n",
            monkeypatch=mp,
        )
        == 0
    )
    assert verify_password(accounts.users.password_hash("root"), "new-pass-1")
    assert run(tmp_path, "audit", "verify", monkeypatch=mp) == 0
    out = capsys.readouterr().out
    assert "audit log intact: 10 rows" in out  # every change above, audited as cli:<user>
    db.close()


def test_passwords_never_come_from_an_argument_and_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    mp = monkeypatch
    assert (
        run(tmp_path, "users", "add", "a", "--role", "staff", "--password", "x", monkeypatch=mp)
        == 2
    )
    assert run(tmp_path, "users", "add", "a", "--role", "staff", stdin="", monkeypatch=mp) == 2
    assert "use --password-stdin" in capsys.readouterr().err
    assert (
        run(
            tmp_path,
            "users",
            "add",
            "a",
            "--role",
            "staff",
            "--password-stdin",
            stdin="short\n",
            monkeypatch=mp,
        )
        == 2
    )
    assert (
        run(tmp_path, "users", "add", "a b", "--role", "staff", "--no-password", monkeypatch=mp)
        == 2
    )
    assert run(tmp_path, "users", "disable", "nobody", monkeypatch=mp) == 2
    assert run(tmp_path, "channels", "assign", "nope", "--member", "a", monkeypatch=mp) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 4 and "no user named 'nobody'" in err


def test_the_demo_organisation_has_accounts_with_derived_passwords(tmp_path: Path) -> None:
    accounts = Accounts.open(Database(tmp_path / "voice.db"))
    key = load_or_create_key(tmp_path)
    ensure_demo_organisation(accounts, key)
    ensure_demo_organisation(accounts, key)  # idempotent
    users = {u.name: u for u in accounts.users.all()}
    assert set(users) == {u.name for u in DEMO_USERS}
    assert {u.role.value for u in users.values()} == {"staff", "supervisor", "admin"}
    assert users["tanaka"].supervises == ("facilities", "front-desk", "shelter-a")
    for user in DEMO_USERS:
        assert verify_password(
            accounts.users.password_hash(user.name), demo_password(key, user.name)
        )
    assert demo_password(key, "sato") != demo_password(b"another key" * 3, "sato")
