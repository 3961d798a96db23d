"""Alerts against a real server: keyword alerts from committed utterances (the sidecar's
catch-up path with no link, and the live link), the event stream's security and bad input,
acknowledge / resolve with their refusals, every step audited, a transcription alert when the
transcriber cannot run."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.accounts import build_org, client, org_server, signin
from tests.backends import BACKENDS
from tests.calllog_seed import meta_of, utterance, write_clip
from tests.integration.test_calllog_review import link  # a stand-in transcriber
from tests.servers import ServerProcess, free_port
from voice_server.calllog.model import Utterance
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

pytestmark = pytest.mark.integration
KEYWORDS = ["火事", "救急", "不審者", "ガス漏れ", "<img src=x onerror=alert(1)>"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The alerts server on SQLite and on PostgreSQL."""
    url = request.getfixturevalue("pg_server").new_database() if request.param != "sqlite" else None
    with org_server(tmp_path_factory.mktemp("alerts"), database_url=url) as srv:
        yield srv


class Stream:
    """A signed-in user's ``/dashboard/events/ws``."""

    def __init__(self, ws: Any, http: httpx.Client, csrf: str) -> None:
        self.ws = ws
        self.http = http
        self.csrf = csrf
        self.seen: list[dict[str, Any]] = []

    async def next(self, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no alert matching {match}; seen {self.seen}")
            msg = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            if msg["type"] != "alert":
                continue
            self.seen.append(msg["alert"])
            if all(msg["alert"].get(k) == v for k, v in match.items()):
                return dict(msg["alert"])

    async def close(self) -> None:
        await self.ws.close()
        self.http.close()


def commit(data_dir: Path, u: Utterance, database_url: str | None = None) -> None:
    """Commit ``u`` as the transcriber sidecar does (another process writing the store: the
    commit event sequence gets its entry), its clip where the sidecar puts it."""
    if database_url is not None:
        from voice_server.calllog.postgres import PgCallLog
        from voice_server.store.pg import PgDatabase

        pg = PgDatabase(database_url).open()
        try:
            assert PgCallLog(pg).add_utterance(u, committed_ms=int(time.time() * 1000))
        finally:
            pg.close()
    else:
        db = Database(data_dir / "voice.db")
        assert SqliteCallLog(db).add_utterance(u, committed_ms=int(time.time() * 1000))
        db.close()
    assert u.clip
    write_clip(data_dir / u.clip, tags=meta_of(u).tags())


def ws_url(server: ServerProcess) -> str:
    return server.url.replace("http", "ws", 1) + "/dashboard/events/ws"


async def stream(server: ServerProcess, name: str) -> tuple[Stream, dict[str, Any]]:
    c = client(server)
    csrf = signin(c, name)
    headers = {"Origin": server.url, "Cookie": f"vs_session={c.cookies['vs_session']}"}
    ws = await websockets.connect(ws_url(server), additional_headers=headers)
    await ws.send(json.dumps({"type": "hello", "csrf": csrf}))
    snapshot = json.loads(await asyncio.wait_for(ws.recv(), 20))
    assert snapshot["type"] == "snapshot"
    return Stream(ws, c, csrf), snapshot


def audit_rows(server: ServerProcess, action: str) -> list[dict[str, Any]]:
    out = json.loads(server.cli("audit", "export", "--format", "json"))
    rows = out if isinstance(out, list) else out["entries"]
    return [r for r in rows if r["action"] == action]


def details(row: dict[str, Any]) -> dict[str, Any]:
    d = row["details"]
    return dict(json.loads(d) if isinstance(d, str) else d)


def test_admins_manage_keyword_lists_and_bad_lists_store_nothing(server: ServerProcess) -> None:
    with client(server) as c:
        csrf = signin(c, "root")
        h = {"X-CSRF-Token": csrf}
        r = c.put("/api/v1/alert-keywords", json={"channel": None, "keywords": KEYWORDS}, headers=h)
        assert r.status_code == 200, r.text
        for body, status, code in (
            ({"channel": None, "keywords": ["火事", " "]}, 400, "keyword_empty"),
            ({"channel": None, "keywords": ["ガス漏れ", "ｶﾞｽ漏れ"]}, 400, "keyword_duplicate"),
            ({"channel": None, "keywords": ["x" * 51]}, 400, "keyword_long"),
            ({"channel": None, "keywords": ["火"]}, 400, "keyword_short"),
            ({"channel": "nowhere", "keywords": ["火事"]}, 404, "not_found"),
            ({"keywords": "火事" * 30_000}, 413, "too_large"),
        ):
            r = c.put("/api/v1/alert-keywords", json=body, headers=h)
            assert (r.status_code, r.json()["error"]) == (status, code), body
        assert c.put("/api/v1/alert-keywords", content=b"{", headers=h).status_code == 400
        assert c.put("/api/v1/alert-keywords", json={"keywords": []}).status_code == 403  # CSRF
        assert c.get("/api/v1/alert-keywords").json()["deployment"] == KEYWORDS
        page = c.get("/dashboard/alert-keywords")
        assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<img src=x" not in page.text
    with client(server) as c:
        h = {"X-CSRF-Token": signin(c, "boss")}
        r = c.put("/api/v1/alert-keywords", json={"keywords": ["火事"]}, headers=h)
        assert r.status_code == 403
        assert c.get("/dashboard/alert-keywords").status_code == 403
    assert [r["result"] for r in audit_rows(server, "alert.keywords")].count("ok") == 1


async def test_a_keyword_alert_reaches_the_channels_supervisors_from_both_commit_paths(
    server: ServerProcess,
) -> None:
    with client(server) as c:
        h = {"X-CSRF-Token": signin(c, "root")}
        c.put("/api/v1/alert-keywords", json={"channel": None, "keywords": KEYWORDS}, headers=h)
    boss, _ = await stream(server, "boss")
    boss2, _ = await stream(server, "boss2")
    # 1. no transcriber linked: the sidecar's spool catch-up commits straight into the store
    fire = utterance("東 門 で 火事 です", speaker="sato")
    commit(server.data_dir, fire, server.env.get("VOICE_DATABASE_URL"))
    got = await boss.next(kind="keyword", utterance=fire.id)
    assert (got["keyword"], got["channel"], got["subject_name"], got["state"]) == (
        "火事",
        "ops",
        "Sato",
        "raised",
    )
    assert "text" not in got  # the stream carries no transcript text
    # 2. the live link: the commit notification wakes the matcher at once
    side = await link(server)
    gas = utterance("ガス漏れ の 疑い", channel="hq", speaker="mori")
    commit(server.data_dir, gas, server.env.get("VOICE_DATABASE_URL"))
    committed = gas.as_api(None)
    await side.send(json.dumps({"type": "committed", "utterance": committed}))
    got2 = await boss2.next(kind="keyword", utterance=gas.id)
    assert got2["keyword"] == "ガス漏れ" and got2["channel"] == "hq"
    await side.close()
    assert all(a["channel"] != "hq" for a in boss.seen)
    assert all(a["channel"] != "ops" for a in boss2.seen)

    # the detail page: the keyword marked, the clip player; an audited call-log read
    views = len(audit_rows(server, "calllog.view"))
    page = boss.http.get(f"/dashboard/alerts/{got['id']}")
    assert page.status_code == 200
    assert "<mark>火事</mark>" in page.text and 'id="alert-audio"' in page.text
    assert len(audit_rows(server, "calllog.view")) == views + 1
    inbox = boss.http.get("/dashboard/alerts?kind=keyword&state=raised")
    assert got["id"] in inbox.text and gas.id not in inbox.text
    assert boss2.http.get(f"/dashboard/alerts/{got['id']}").status_code == 403

    # acknowledging an alert of a channel one does not supervise: 403, audited
    h2 = {"X-CSRF-Token": boss2.csrf}
    r = boss2.http.post(f"/api/v1/alerts/{got['id']}/acknowledge", headers=h2)
    assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    h = {"X-CSRF-Token": boss.csrf}
    assert boss.http.post(f"/api/v1/alerts/{got['id']}/acknowledge").status_code == 403  # CSRF
    r = boss.http.post(f"/api/v1/alerts/{got['id']}/acknowledge", headers=h)
    assert r.status_code == 200 and r.json()["acknowledged"]["name"] == "Boss"
    acked = await boss.next(id=got["id"], state="acknowledged")
    assert acked["acknowledged"]["by"] == "boss"
    r = boss.http.post(f"/api/v1/alerts/{got['id']}/acknowledge", headers=h)
    assert (r.status_code, r.json()["error"]) == (409, "alert_state")
    for body, code in (
        ({"resolution": "maybe"}, "bad_resolution"),
        ({"resolution": "valid", "note": "x" * 1001}, "bad_note"),
        ([1], "bad_request"),
    ):
        r = boss.http.post(f"/api/v1/alerts/{got['id']}/resolve", json=body, headers=h)
        assert (r.status_code, r.json()["error"]) == (400, code)
    note = "<script>alert(1)</script> 誤検知"
    r = boss.http.post(
        f"/api/v1/alerts/{got['id']}/resolve",
        json={"resolution": "false_alarm", "note": note},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["resolved"]["note"] == note
    done = await boss.next(id=got["id"], state="resolved")
    assert done["resolved"]["resolution"] == "false_alarm"
    page = boss.http.get(f"/dashboard/alerts/{got['id']}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; 誤検知" in page.text
    assert "<script>alert(1)" not in page.text
    r = boss.http.get("/api/v1/alerts", params={"state": "resolved", "kind": "keyword"})
    assert [a["id"] for a in r.json()["items"]] == [got["id"]]
    assert boss.http.get("/api/v1/alerts", params={"state": "nope"}).status_code == 400
    await boss.close()
    await boss2.close()

    assert {(r["actor"], r["result"]) for r in audit_rows(server, "alert.acknowledge")} == {
        ("boss2", "denied"),
        ("boss", "ok"),
        ("boss", "failed"),
    }
    assert [r["actor"] for r in audit_rows(server, "alert.resolve") if r["result"] == "ok"] == [
        "boss"
    ]
    raised = [details(r) for r in audit_rows(server, "alert.raise")]
    assert {d["utterance"] for d in raised} >= {fire.id, gas.id}
    assert all("東" not in json.dumps(d, ensure_ascii=False) for d in raised)  # no text
    assert "intact" in server.cli("audit", "verify")


async def test_the_event_stream_refuses_what_the_live_view_refuses(server: ServerProcess) -> None:
    url = ws_url(server)

    async def close_code(ws: Any) -> int | None:
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 20)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    with client(server) as c:
        csrf = signin(c, "boss")
        cookie = {"Cookie": f"vs_session={c.cookies['vs_session']}"}
        ws = await websockets.connect(url, additional_headers={"Origin": server.url, **cookie})
        await ws.send("not json")
        assert await close_code(ws) == 4400
        ws = await websockets.connect(url, additional_headers={"Origin": server.url, **cookie})
        await ws.send(json.dumps({"type": "hello", "csrf": "wrong"}))
        assert await close_code(ws) == 4403
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(url, additional_headers={"Origin": "http://evil", **cookie})
        ws = await websockets.connect(url, additional_headers={"Origin": server.url})
        await ws.send(json.dumps({"type": "hello"}))
        assert await close_code(ws) == 4401
        ws = await websockets.connect(url, additional_headers={"Origin": server.url, **cookie})
        await ws.send(json.dumps({"type": "hello", "csrf": csrf}))
        assert json.loads(await ws.recv())["type"] == "snapshot"
        for sent, answer in (
            ("{", {"type": "error", "code": "bad_message"}),
            ("[1]", {"type": "error", "code": "bad_message"}),
            ('{"type": "ack"}', {"type": "error", "code": "unknown_type"}),
            ('{"type": "ping"}', {"type": "pong"}),
        ):
            await ws.send(sent)
            assert json.loads(await asyncio.wait_for(ws.recv(), 20)) == answer
        await ws.close()
    with client(server) as c:
        csrf = signin(c, "sato")  # staff have no dashboard
        cookie = {"Cookie": f"vs_session={c.cookies['vs_session']}"}
        ws = await websockets.connect(url, additional_headers={"Origin": server.url, **cookie})
        await ws.send(json.dumps({"type": "hello", "csrf": csrf}))
        assert await close_code(ws) == 4403
        assert c.get("/api/v1/alerts").json()["items"] == []


def test_a_transcriber_that_cannot_run_raises_one_transcription_alert(tmp_path: Path) -> None:
    build_org(tmp_path)
    broken = tmp_path / "broken-model"
    broken.mkdir()
    srv = ServerProcess(
        tmp_path,
        free_port(),
        free_port(socket.SOCK_DGRAM),
        {"VOICE_GRACE_SECONDS": "1"},
        ["--transcriber", "--model", str(broken)],
    )
    srv.start()
    try:
        with client(srv) as c:
            signin(c, "boss2")  # supervises another channel: deployment-wide alerts reach all
            deadline = time.monotonic() + 120
            items: list[dict[str, Any]] = []
            while time.monotonic() < deadline and not items:
                items = c.get("/api/v1/alerts", params={"kind": "transcription"}).json()["items"]
                time.sleep(0.5)
            assert len(items) == 1, srv.log()
            assert items[0]["channel"] == "" and items[0]["state"] == "raised"
            page = c.get("/dashboard/alerts", headers={"Accept-Language": "en"})
            assert "Transcription stopped" in page.text
            time.sleep(3)  # two more checks of the watcher: still one alert
            again = c.get("/api/v1/alerts", params={"kind": "transcription"}).json()["items"]
            assert [a["id"] for a in again] == [items[0]["id"]]
    finally:
        srv.stop()
