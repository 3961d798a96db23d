"""A test organisation with accounts, and HTTP helpers for signing in (integration tests)."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.servers import ServerProcess, free_port
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.accounts.users import Assignment
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import Audience, Role, issue_token

__all__ = ["Role"]
from voice_server.store.database import Database

BY = Caller("cli:test", "cli", "local")
# name: (role, member of, supervises)
USERS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "root": ("admin", (), ()),
    "root2": ("admin", (), ("ops",)),
    "boss": ("supervisor", (), ("ops",)),
    "boss2": ("supervisor", (), ("hq",)),
    "sato": ("staff", ("ops",), ()),
    "kato": ("staff", ("ops",), ()),
    "ito": ("staff", ("ops",), ()),
    "mori": ("staff", ("hq",), ()),
    "gone": ("staff", ("ops",), ()),
}


def password(name: str) -> str:
    return f"pw-{name}-1234"


def build_org(data_dir: Path, database_url: str | None = None) -> None:
    from voice_server.backends.seam import open_database

    db = Database(data_dir / "voice.db") if database_url is None else None
    accounts = Accounts.open(db or open_database(database_url, data_dir))
    svc = accounts.service
    svc.add_channel(BY, "ops", display_name="運用")
    svc.add_channel(BY, "hq", display_name="本部")
    for name, (role, member, supervises) in USERS.items():
        svc.add_user(BY, name, role, display_name=name.title(), password=password(name))
        for c in member:
            svc.assign(BY, c, name, Assignment.MEMBER)
        for c in supervises:
            svc.assign(BY, c, name, Assignment.SUPERVISOR)
    svc.set_enabled(BY, "gone", False)


@contextlib.contextmanager
def org_server(
    data_dir: Path, env: dict[str, str] | None = None, database_url: str | None = None
) -> Iterator[ServerProcess]:
    """The test organisation's server (on PostgreSQL when ``database_url`` is given: the server
    and every ``server.cli`` get it as VOICE_DATABASE_URL)."""
    build_org(data_dir, database_url)
    env = {**(env or {}), **({"VOICE_DATABASE_URL": database_url} if database_url else {})}
    server = ServerProcess(
        data_dir,
        free_port(),
        free_port(socket.SOCK_DGRAM),
        {"VOICE_GRACE_SECONDS": "1", **env},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def token(
    server: ServerProcess,
    sub: str,
    *channels: str,
    aud: Audience = Audience.JOIN,
    role: Role = Role.STAFF,
) -> str:
    return issue_token(
        load_or_create_key(server.data_dir),
        sub=sub,
        name=sub,
        channels=channels or ("ops",),
        role=role,
        aud=aud,
        ttl_seconds=3600,
        now=int(time.time()),
    )


def client(server: ServerProcess, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=server.url, transport=transport, timeout=10)


def pre_csrf(c: httpx.Client) -> str:
    r = c.get("/api/v1/auth/session")
    assert r.status_code == 200 and not r.json()["authenticated"]
    return str(r.json()["csrf_token"])


def signin(c: httpx.Client, name: str, pw: str | None = None) -> str:
    """Sign in over the JSON API; return the session's CSRF token."""
    r = c.post(
        "/api/v1/auth/login",
        json={"name": name, "password": pw or password(name)},
        headers={"X-CSRF-Token": pre_csrf(c)},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def make_code(server: ServerProcess, user: str, by: str = "boss") -> str:
    """A one-time sign-in code for ``user``, made by the supervisor ``by`` over the API."""
    with client(server) as c:
        csrf = signin(c, by)
        r = c.post("/api/v1/auth/codes", json={"user": user}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])


def form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)
