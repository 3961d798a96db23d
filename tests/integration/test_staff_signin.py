"""Staff sign in without tokens (the phone app's path, over HTTP and the signaling WebSocket
against a real server): session → channels → join token → join, silent renewal, sign-out, the
QR code link, session expiry, and the bad inputs that must end in a clear refusal with nothing
half set up on the server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.accounts import client, form_csrf, make_code, org_server, password, pre_csrf, signin
from tests.servers import ServerProcess
from tests.wsclient import Peer

pytestmark = pytest.mark.integration

JOIN_TTL = 60
TOKEN_WARNING = 58  # token_expiring comes about 2 s after a join


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "VOICE_JOIN_TOKEN_TTL_SECONDS": str(JOIN_TTL),
        "VOICE_TOKEN_WARNING_SECONDS": str(TOKEN_WARNING),
        "VOICE_SESSION_WARNING_SECONDS": "120",
    }
    with org_server(tmp_path_factory.mktemp("staff"), env) as srv:
        yield srv


def db(server: ServerProcess) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "voice.db", isolation_level=None)


def count(server: ServerProcess, table: str) -> int:
    conn = db(server)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def redeem(c: httpx.Client, code: str) -> httpx.Response:
    return c.post("/api/v1/auth/code", json={"code": code}, headers={"X-CSRF-Token": pre_csrf(c)})


def join_token(c: httpx.Client, csrf: str, channel: str = "ops") -> httpx.Response:
    return c.post(
        "/api/v1/auth/join-token", json={"channel": channel}, headers={"X-CSRF-Token": csrf}
    )


def metric(server: ServerProcess, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_code_session_lists_the_channels_and_its_join_token_joins(server: ServerProcess) -> None:
    with client(server) as phone:
        r = redeem(phone, make_code(server, "sato"))
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["user"]["channels"] == [{"name": "ops", "display_name": "運用"}]
        assert info["warning_seconds"] == 120
        assert 43000 < info["expires_in"] <= 43200
        jt = join_token(phone, info["csrf_token"])
        assert jt.status_code == 200, jt.text
        grant = jt.json()
        assert grant["channel"] == "ops" and 0 < grant["expires_in"] <= JOIN_TTL
        assert "token" not in str(phone.cookies)  # the token is in the answer only

    async def talk() -> None:
        peer = await Peer.connect(server.ws_url)
        joined = await peer.join(grant["token"], channel="ops", device_id="phone-sato")
        assert joined["you"]["sub"] == "sato" and joined["channel"]["display_name"] == "運用"
        await peer.close()

    asyncio.run(talk())


def test_a_renewed_join_token_refreshes_the_live_call_before_it_expires(
    server: ServerProcess,
) -> None:
    with client(server) as phone:
        csrf = signin(phone, "sato")
        first = join_token(phone, csrf).json()

        async def call() -> None:
            peer = await Peer.connect(server.ws_url)
            await peer.join(first["token"], channel="ops", device_id="phone-renew")
            warned = await peer.expect("token_expiring", timeout=30)
            assert warned["expires_at"] == first["expires_at"]
            fresh = await asyncio.to_thread(join_token, phone, csrf)
            assert fresh.json()["expires_at"] > first["expires_at"]
            await peer.send(type="refresh", token=fresh.json()["token"], id="r1")
            done = await peer.expect("refreshed", timeout=10)
            assert done["expires_at"] == fresh.json()["expires_at"]
            await peer.close()

        asyncio.run(call())


def test_sign_out_revokes_the_session_and_no_join_token_comes_after(
    server: ServerProcess,
) -> None:
    with client(server) as phone:
        csrf = signin(phone, "sato")
        raw = phone.cookies["vs_session"]
        assert join_token(phone, csrf).status_code == 200
        assert phone.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert "vs_session" not in phone.cookies
    with client(server) as replay:  # the old cookie, kept by someone
        replay.cookies.set("vs_session", raw)
        info = replay.get("/api/v1/auth/session").json()
        assert not info["authenticated"] and info["ended"] == "session_revoked"
        r = join_token(replay, info["csrf_token"])
        assert r.status_code == 401 and r.json()["detail"]["code"] == "session_revoked"
        r = replay.post(
            "/api/v1/auth/join-token",
            json={"channel": "ops"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403 and r.json()["detail"]["code"] == "csrf"


def test_signing_in_again_on_the_same_phone_ends_the_earlier_session(
    server: ServerProcess,
) -> None:
    with client(server) as phone:
        csrf = signin(phone, "sato")
        first = phone.cookies["vs_session"]
        r = phone.post(  # signed in: the session's CSRF token, as the app sends it
            "/api/v1/auth/login",
            json={"name": "kato", "password": password("kato")},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200
        assert phone.get("/api/v1/auth/session").json()["user"]["name"] == "kato"
    with client(server) as other:
        other.cookies.set("vs_session", first)
        assert other.get("/api/v1/auth/session").json()["ended"] == "session_revoked"


def test_the_qr_code_link_hands_the_code_to_the_phone_app(server: ServerProcess) -> None:
    with client(server) as phone:
        page = phone.get("/signin")
        assert '<meta name="phone-app" content="/">' in page.text
        script = phone.get("/dashboard/static/signin.js").text
        assert "window.location.replace(`/#code=" in script
        app = phone.get("/")
        assert app.status_code == 200 and 'id="code-form"' in app.text
        assert phone.get("/js/session.js").status_code == 200
        # the code form of /signin (typed there) lands staff in the app
        data = {"code": make_code(server, "sato"), "csrf": form_csrf(page.text), "next": ""}
        r = phone.post("/signin/code", data=data)
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_an_expired_session_is_said_to_be_expired(server: ServerProcess) -> None:
    with client(server) as phone:
        csrf = signin(phone, "sato")
        conn = db(server)
        try:
            conn.execute(
                "UPDATE web_session SET expires_at = ? WHERE csrf = ?", (time.time() - 1, csrf)
            )
        finally:
            conn.close()
        info = phone.get("/api/v1/auth/session").json()
        assert not info["authenticated"] and info["ended"] == "session_expired"
        r = join_token(phone, csrf)
        # the CSRF check comes first: the expired session's token no longer matches
        assert r.status_code == 403
        r = join_token(phone, info["csrf_token"])
        assert r.status_code == 401 and r.json()["detail"]["code"] == "session_expired"


def test_a_short_session_caps_its_join_tokens(tmp_path: Path) -> None:
    env = {"VOICE_SESSION_TTL_SECONDS": "30", "VOICE_SESSION_WARNING_SECONDS": "10"}
    with org_server(tmp_path, env) as short, client(short) as phone:
        csrf = signin(phone, "sato")
        info = phone.get("/api/v1/auth/session").json()
        assert 0 < info["expires_in"] <= 30 and info["warning_seconds"] == 10
        grant = join_token(phone, csrf).json()
        assert grant["expires_at"] <= info["expires_at"] and grant["expires_in"] <= 30


# ---------------------------------------------------------------- bad input


def test_a_wrong_or_expired_code_is_refused_and_starts_no_session(server: ServerProcess) -> None:
    code = make_code(server, "sato")
    conn = db(server)
    try:
        conn.execute(
            "UPDATE signin_code SET expires_at = ? WHERE used_at IS NULL", (time.time() - 1,)
        )
    finally:
        conn.close()
    before = count(server, "web_session")
    with client(server, "127.0.0.31") as phone:
        for attempt in (code, "ZZZZ-ZZZZ", "not a code!"):
            r = redeem(phone, attempt)
            assert r.status_code == 401 and r.json()["detail"]["code"] == "signin_failed"
            assert not phone.get("/api/v1/auth/session").json()["authenticated"]
    assert count(server, "web_session") == before


def test_a_disabled_users_session_and_call_end_with_a_clear_reason(
    server: ServerProcess,
) -> None:
    with client(server) as phone:
        csrf = signin(phone, "kato")
        grant = join_token(phone, csrf).json()

        async def call() -> None:
            peer = await Peer.connect(server.ws_url)
            await peer.join(grant["token"], channel="ops", device_id="phone-kato")
            await asyncio.to_thread(server.cli, "users", "disable", "kato")
            err = await peer.expect("error", timeout=15)
            assert err["code"] == "user_disabled" and err["fatal"]
            assert await peer.closed(10) == 4403

        try:
            asyncio.run(call())
            info = phone.get("/api/v1/auth/session").json()
            assert not info["authenticated"] and info["ended"] == "user_disabled"
            r = join_token(phone, info["csrf_token"])
            assert r.status_code == 401 and r.json()["detail"]["code"] == "user_disabled"
        finally:
            server.cli("users", "enable", "kato")


def test_leaving_every_channel_empties_the_list_and_refuses_old_and_new_join_tokens(
    server: ServerProcess,
) -> None:
    with client(server) as phone:
        csrf = signin(phone, "ito")
        old = join_token(phone, csrf).json()["token"]
        server.cli("channels", "unassign", "ops", "--member", "ito")
        try:
            info = phone.get("/api/v1/auth/session").json()
            assert info["authenticated"] and info["user"]["channels"] == []
            r = join_token(phone, csrf)
            assert r.status_code == 403 and r.json()["detail"]["code"] == "channel_forbidden"
            joins = metric(server, "voice_session_joins_total")

            async def refused() -> None:
                peer = await Peer.connect(server.ws_url)
                await peer.send(
                    type="join", token=old, channel="ops", device_id="phone-ito", id="join"
                )
                err = await peer.expect("error", timeout=10)
                assert err["code"] == "channel_forbidden"
                assert await peer.closed(10) == 4403

            asyncio.run(refused())
            assert metric(server, "voice_session_joins_total") == joins  # no session was made
        finally:
            server.cli("channels", "assign", "ops", "--member", "ito")
