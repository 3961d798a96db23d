"""Every cell of the access table (docs/security.md), over HTTP with sessions and ``aud=api``
tokens, and over the signaling and live-view WebSockets; live sessions end within 2 s when the
directory stops allowing them. The call-log rows (search, view, play, export, live) run against
utterances seeded into the server's store. All of it on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets

from tests.accounts import client, org_server, pre_csrf, signin, token
from tests.backends import BACKENDS
from tests.calllog_seed import seed, utterance
from tests.servers import ServerProcess
from tests.wsclient import Peer
from voice_server.calllog.burst import BurstMeta, clip_path, rows_of
from voice_server.identity.tokens import Audience, Role

pytestmark = pytest.mark.integration

ACTORS = ["anon", "staff", "sup", "sup_other", "admin", "admin_assigned", "admin_api", "sup_api"]


class Caller:
    def __init__(self, c: httpx.Client, csrf: str, bearer: str | None = None) -> None:
        self.c, self.csrf, self.bearer = c, csrf, bearer

    def request(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        if self.bearer:
            headers = {"Authorization": f"Bearer {self.bearer}"}
        return self.c.request(method, path, json=body, headers=headers, follow_redirects=False)


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("access")
    url = request.getfixturevalue("pg_server").new_database() if request.param != "sqlite" else None
    log = None
    if url is not None:
        from voice_server.calllog.postgres import PgCallLog
        from voice_server.store.pg import PgDatabase

        log = PgCallLog(PgDatabase(url))
    with org_server(data, database_url=url) as srv:
        items = [utterance("東 門 で 水 漏れ", burst_id=OPS_ID), utterance("本部", channel="hq")]
        items += console_rows()
        seed(data, items, log)
        yield srv
    if log is not None:
        log._db.close()


OPS_MS = 1_780_000_000_000
# fixed ids: test ids name them, and every test process (pytest-xdist) must collect the same
OPS_ID = f"{OPS_MS:013d}0a11ce"
ALL_ID = f"{OPS_MS + 5_000:013d}0b0b05"  # an all-call into ops and hq: a row in each
DIRECT_ID = f"{OPS_MS + 9_000:013d}0d1ec7"  # a direct talk to sato, under ops


def console_rows() -> list[Any]:
    """The console's row kinds: an all-call's two rows (one shared clip) and a direct talk."""
    base = utterance("全 体 へ", burst_id=ALL_ID, speaker="boss")
    meta = BurstMeta(ALL_ID, "ops", "boss", "Boss", "s", OPS_MS + 5_000, "all_call", ("hq",))
    direct = utterance("直 接", burst_id=DIRECT_ID, speaker="boss")
    dmeta = BurstMeta(DIRECT_ID, "ops", "boss", "Boss", "s", OPS_MS + 9_000, "direct", (), "sato")
    return [*rows_of(meta, replace(base, clip=clip_path(meta))), *rows_of(dmeta, direct)]


@pytest.fixture(scope="module")
def callers(server: ServerProcess) -> Iterator[dict[str, Caller]]:
    out: dict[str, Caller] = {}
    sessions = {
        "staff": "sato",
        "sup": "boss",
        "sup_other": "boss2",
        "admin": "root",
        "admin_assigned": "root2",
    }
    anon = client(server)
    out["anon"] = Caller(anon, pre_csrf(anon))
    for key, name in sessions.items():
        c = client(server)
        out[key] = Caller(c, signin(c, name))
    api = token(server, "root", "*", aud=Audience.API, role=Role.ADMIN)
    out["admin_api"] = Caller(client(server), "", api)
    sup_api = token(
        server, "boss", "*", aud=Audience.API, role=Role.ADMIN
    )  # narrowed to supervisor
    out["sup_api"] = Caller(client(server), "", sup_api)
    yield out
    for caller in out.values():
        caller.c.close()


OK, NO, ANON, LOGIN = 200, 403, 401, 303
# (method, path, body, expected status per actor in ACTORS order)
TABLE: list[tuple[str, str, dict[str, Any] | None, list[int]]] = [
    # admin: users, channels, assignments, retention, audit log
    ("GET", "/api/v1/users", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/api/v1/users/sato", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("POST", "/api/v1/users/mori/enable", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/api/v1/channels", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("PATCH", "/api/v1/channels/hq", {"display_name": "本部"}, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("PATCH", "/api/v1/channels/hq", {"retention_days": 90}, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("PUT", "/api/v1/channels/hq/members/mori", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("PATCH", "/api/v1/channels/hq/talk", {"duck_db": -20}, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/api/v1/audit", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/api/v1/audit/export?format=json", None, [ANON, NO, NO, NO, OK, OK, OK, NO]),
    # sign-in codes: admins for any staff, supervisors for staff of their channels
    ("POST", "/api/v1/auth/codes", {"user": "sato"}, [ANON, NO, 201, NO, 201, 201, 201, 201]),
    ("POST", "/api/v1/auth/codes", {"user": "boss"}, [ANON, NO, NO, NO, NO, NO, NO, NO]),
    # talking: members and supervisors of the channel, whatever the role
    ("POST", "/api/v1/auth/join-token", {"channel": "ops"}, [ANON, OK, OK, NO, NO, OK, NO, OK]),
    ("POST", "/api/v1/auth/join-token", {"channel": "hq"}, [ANON, NO, NO, OK, NO, NO, NO, NO]),
    # the dashboard: supervisors and admins; its admin pages: admins
    ("GET", "/dashboard", None, [LOGIN, NO, OK, OK, OK, OK, OK, OK]),
    ("GET", "/dashboard/codes", None, [LOGIN, NO, OK, OK, OK, OK, OK, OK]),
    ("GET", "/dashboard/users", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/dashboard/channels", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/dashboard/channels/ops", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/dashboard/audit", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/dashboard/audit/export?format=csv", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    ("GET", "/dashboard/admin/network", None, [LOGIN, NO, NO, NO, OK, OK, OK, NO]),
    # the call log: supervisors of the channel; admins only where also assigned (root2: ops);
    # without a channel filter, every channel the caller supervises (boss2: hq)
    ("GET", "/dashboard/search", None, [LOGIN, NO, OK, OK, OK, OK, OK, OK]),  # the empty form
    ("GET", "/dashboard/search?q=", None, [LOGIN, NO, OK, OK, NO, OK, NO, OK]),
    ("GET", "/dashboard/search?q=漏れ&channel=ops", None, [LOGIN, NO, OK, NO, NO, OK, NO, OK]),
    ("GET", f"/dashboard/utterances/{OPS_ID}", None, [LOGIN, NO, OK, NO, NO, OK, NO, OK]),
    (
        "GET",
        "/dashboard/search/export?format=csv&channel=ops",
        None,
        [LOGIN, NO, OK, NO, NO, OK, NO, OK],
    ),
    ("GET", "/dashboard/search/export?format=json", None, [LOGIN, NO, OK, OK, NO, OK, NO, OK]),
    ("GET", "/dashboard/live", None, [LOGIN, NO, OK, OK, OK, OK, OK, OK]),
    ("GET", "/dashboard/live/ops", None, [LOGIN, NO, OK, NO, NO, OK, NO, OK]),
    ("GET", "/api/v1/utterances", None, [ANON, NO, OK, OK, NO, OK, NO, OK]),
    ("GET", "/api/v1/utterances?channel=ops&q=漏れ", None, [ANON, NO, OK, NO, NO, OK, NO, OK]),
    ("GET", f"/api/v1/utterances/{OPS_ID}", None, [ANON, NO, OK, NO, NO, OK, NO, OK]),
    (
        "GET",
        "/api/v1/utterances/export?format=json&channel=ops",
        None,
        [ANON, NO, OK, NO, NO, OK, NO, OK],
    ),
    ("GET", f"/api/v1/clips/{OPS_ID}.ogg", None, [ANON, NO, OK, NO, NO, OK, NO, OK]),
    # the console's rows: an all-call's row per channel (each readable where the channel is),
    # a direct talk's under the target's channel (its supervisors; staff have no call log)
    ("GET", f"/api/v1/utterances/{ALL_ID}:ops", None, [ANON, NO, OK, NO, NO, OK, NO, OK]),
    ("GET", f"/api/v1/utterances/{ALL_ID}:hq", None, [ANON, NO, NO, OK, NO, NO, NO, NO]),
    ("GET", f"/api/v1/clips/{ALL_ID}:hq.ogg", None, [ANON, NO, NO, OK, NO, NO, NO, NO]),
    ("GET", f"/dashboard/utterances/{ALL_ID}:ops", None, [LOGIN, NO, OK, NO, NO, OK, NO, OK]),
    ("GET", f"/api/v1/utterances/{DIRECT_ID}", None, [ANON, NO, OK, NO, NO, OK, NO, OK]),
    # /metrics: as configured (loopback), whoever asks
    ("GET", "/metrics", None, [OK] * 8),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    TABLE,
    ids=[f"{m} {p} {b or ''}" for m, p, b, _ in TABLE],
)
def test_access_table_over_http(
    callers: dict[str, Caller],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    expected: list[int],
) -> None:
    got = [callers[a].request(method, path, body).status_code for a in ACTORS]
    assert dict(zip(ACTORS, got, strict=True)) == dict(zip(ACTORS, expected, strict=True))


def test_an_all_call_row_does_not_say_which_other_channels_it_reached(
    callers: dict[str, Caller],
) -> None:
    row = callers["sup"].request("GET", f"/api/v1/utterances/{ALL_ID}:ops", None).json()
    assert row["kind"] == "all_call" and row["channel"] == "ops"
    assert "hq" not in json.dumps(row) and "broadcast_id" not in row
    found = callers["sup_other"].request("GET", "/api/v1/utterances?q=全", None).json()
    assert [i["id"] for i in found["items"]] == [f"{ALL_ID}:hq"]
    direct = callers["sup"].request("GET", f"/api/v1/utterances/{DIRECT_ID}", None).json()
    assert (direct["kind"], direct["target_sub"]) == ("direct", "sato")


def test_talk_rules_over_rest_raise_a_member_and_refuse_bad_levels(
    callers: dict[str, Caller],
) -> None:
    admin = callers["admin_api"]
    ok = admin.request("PATCH", "/api/v1/channels/ops/talk", {"priority": {"sato": 2}})
    assert ok.status_code == 200 and ok.json()["priority"] == {"sato": 2}
    for bad, why in (({"sato": 3}, "levels 1-2 only"), ({"boss2": 2}, "not a member")):
        r = admin.request("PATCH", "/api/v1/channels/ops/talk", {"priority": bad})
        assert r.status_code == 400 and why in r.json()["detail"]["message"], r.text
    back = admin.request("PATCH", "/api/v1/channels/ops/talk", {"priority": {"sato": 1}})
    assert back.json()["priority"] == {} and back.json()["listeners"] == []
    page = callers["admin"].request("GET", "/dashboard/channels/ops", None)
    assert page.status_code == 200 and 'id="talk-rules"' in page.text


def test_refusals_of_signed_in_users_are_audited(callers: dict[str, Caller]) -> None:
    callers["sup"].request("GET", "/api/v1/users", None)
    page = callers["admin"].request("GET", "/api/v1/audit?limit=50", None).json()["entries"]
    assert any(
        e["actor"] == "boss" and e["action"] == "users.view" and e["result"] == "denied"
        for e in page
    )


# ---------------------------------------------------------------------- WebSocket
async def join_result(server: ServerProcess, tok: str, channel: str) -> tuple[str, int | None]:
    peer = await Peer.connect(server.ws_url)
    await peer.send(type="join", token=tok, channel=channel, device_id="d1")
    msg = await peer.recv()
    if msg["type"] == "joined":
        await peer.send(type="leave")
        await peer.close()
        return "joined", None
    code = await peer.closed()
    return msg["code"], code


async def live_result(server: ServerProcess, caller: Caller, channel: str, **kw: Any) -> Any:
    """Open the live view of ``channel`` as ``caller``: its first message type, or the close
    code (``("refused", None)`` when the handshake itself is refused)."""
    headers = {"Origin": kw.get("origin", server.url)}
    if caller.bearer:
        headers = {"Authorization": f"Bearer {caller.bearer}"}
    elif "vs_session" in caller.c.cookies:
        headers["Cookie"] = f"vs_session={caller.c.cookies['vs_session']}"
    url = server.url.replace("http", "ws", 1) + f"/dashboard/live/{channel}/ws"
    try:
        ws = await websockets.connect(url, additional_headers=headers)
    except websockets.InvalidStatus as exc:
        return ("refused", exc.response.status_code)
    async with ws:
        await ws.send(json.dumps({"type": "hello", "csrf": kw.get("csrf", caller.csrf)}))
        try:
            return (json.loads(await asyncio.wait_for(ws.recv(), 5))["type"], None)
        except websockets.ConnectionClosed as exc:
            return ("closed", exc.rcvd.code if exc.rcvd else None)


LIVE = ("presence", None)
CLOSED_401, CLOSED_403 = ("closed", 4401), ("closed", 4403)


async def test_access_table_over_the_live_view_websocket(
    server: ServerProcess, callers: dict[str, Caller]
) -> None:
    expected = [CLOSED_401, CLOSED_403, LIVE, CLOSED_403, CLOSED_403, LIVE, CLOSED_403, LIVE]
    got = [await live_result(server, callers[a], "ops") for a in ACTORS]
    assert dict(zip(ACTORS, got, strict=True)) == dict(zip(ACTORS, expected, strict=True))
    sup = callers["sup"]
    assert await live_result(server, sup, "hq") == CLOSED_403
    assert await live_result(server, sup, "ops", csrf="wrong") == CLOSED_403
    assert await live_result(server, sup, "ops", origin="http://evil.example") == ("refused", 403)


def session_token(server: ServerProcess, name: str, channel: str) -> str:
    with client(server) as c:
        csrf = signin(c, name)
        r = c.post(
            "/api/v1/auth/join-token", json={"channel": channel}, headers={"X-CSRF-Token": csrf}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


@pytest.mark.parametrize(
    ("sub", "claims", "channel", "expected"),
    [
        ("sato", ("ops",), "ops", ("joined", None)),
        ("sato", ("hq",), "hq", ("channel_forbidden", 4403)),  # the token claims more than granted
        ("sato", ("*",), "hq", ("channel_forbidden", 4403)),
        ("sato", ("*",), "ops", ("joined", None)),
        ("boss", ("*",), "ops", ("joined", None)),  # supervising a channel lets one talk there
        ("boss", ("*",), "hq", ("channel_forbidden", 4403)),
        ("root", ("*",), "ops", ("channel_forbidden", 4403)),  # admin, not assigned
        ("root2", ("*",), "ops", ("joined", None)),
        ("gone", ("ops",), "ops", ("user_disabled", 4403)),
        ("stranger", ("ops",), "ops", ("user_unknown", 4401)),  # no account once accounts exist
    ],
)
async def test_access_table_over_websocket(
    server: ServerProcess,
    sub: str,
    claims: tuple[str, ...],
    channel: str,
    expected: tuple[str, int | None],
) -> None:
    assert await join_result(server, token(server, sub, *claims), channel) == expected


async def test_a_join_token_from_a_session_joins_and_shows_the_directory_name(
    server: ServerProcess,
) -> None:
    tok = await asyncio.to_thread(session_token, server, "sato", "ops")
    peer = await Peer.connect(server.ws_url)
    joined = await peer.join(tok, channel="ops")
    assert joined["you"]["sub"] == "sato" and joined["you"]["name"] == "Sato"
    await peer.close()


async def test_the_network_page_shows_each_participants_reported_path(
    server: ServerProcess, callers: dict[str, Caller]
) -> None:
    tok = await asyncio.to_thread(token, server, "sato", "ops")
    peer = await Peer.connect(server.ws_url)
    await peer.join(tok, channel="ops", device_id="phone-net")
    await peer.send(type="stats", path="tcp", rtt_ms=42.4, loss=0.012, jitter_ms=3.2)

    def page() -> str:
        return callers["admin"].request("GET", "/dashboard/admin/network", None).text

    deadline = time.monotonic() + 20
    while 'data-path="tcp"' not in (html := await asyncio.to_thread(page)):
        assert time.monotonic() < deadline, html
        await asyncio.sleep(0.1)
    row = html[html.index('data-sub="sato"') :]
    assert "<code>tcp</code>" in row and ">42<" in row and ">1.2<" in row
    assert "<code>phone-net</code>" in row and ">Sato<" in row
    assert '<li data-path="tcp"><code>tcp</code>: <span class="count">1</span>' in html
    await peer.close()


def cli(server: ServerProcess, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "voice_server.cli", *args, "--data-dir", str(server.data_dir)],
        check=True,
        capture_output=True,
        env={**os.environ, **server.env},
    )


async def test_disabling_a_user_from_the_cli_ends_their_session_within_2s(
    server: ServerProcess,
) -> None:
    watcher = await Peer.connect(server.ws_url)
    await watcher.join(token(server, "sato", "ops"), channel="ops", device_id="w")
    victim = await Peer.connect(server.ws_url)
    await victim.join(token(server, "kato", "ops"), channel="ops", device_id="k")
    await asyncio.to_thread(cli, server, "users", "disable", "kato")
    started = time.monotonic()
    err = await victim.expect("error", timeout=30)
    assert err["code"] == "user_disabled" and err["fatal"]
    assert await victim.closed(timeout=30) == 4403
    # the directory watch ends it within ~2 s on a quiet machine; a busy one may take longer
    assert time.monotonic() - started <= 30
    while (left := await watcher.expect("participant_left", timeout=30))["participant"][
        "sub"
    ] != "kato":
        pass  # others may come and go
    assert left["reason"] == "revoked"
    assert await join_result(server, token(server, "kato", "ops"), "ops") == ("user_disabled", 4403)
    await watcher.close()
    await asyncio.to_thread(cli, server, "users", "enable", "kato")


async def test_removing_a_member_from_the_dashboard_api_ends_their_session(
    server: ServerProcess, callers: dict[str, Caller]
) -> None:
    peer = await Peer.connect(server.ws_url)
    await peer.join(token(server, "ito", "ops"), channel="ops", device_id="i")
    r = await asyncio.to_thread(
        callers["admin"].request, "DELETE", "/api/v1/channels/ops/members/ito", None
    )
    assert r.status_code == 200
    started = time.monotonic()
    err = await peer.expect("error", timeout=30)
    assert err["code"] == "channel_forbidden"
    assert await peer.closed(timeout=30) == 4403 and time.monotonic() - started <= 30
