"""The supervisor's call log against a real server: N audited actions give exactly N audit rows
(search, clip URLs issued, transcript view, export, direct clip fetch, live view, a refusal) with
no transcript text in them; the live view shows who is online, partial captions and committed
utterances and ends within 2 s when its viewer loses the channel; the scheduled retention purge
leaves no trace of a canary phrase in any file of the data directory, and a legal hold keeps
its channel's log."""

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

from tests.accounts import BY, build_org, client, signin, token
from tests.backends import BACKENDS
from tests.calllog_seed import files_with, seed, spool, utterance
from tests.servers import ServerProcess, free_port
from tests.wsclient import Peer
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.users import Assignment
from voice_server.backends.seam import open_database
from voice_server.identity.derived import LINK_PURPOSE, derive_key, mac_hex
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import Audience, Role
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000
CANARY = "ホタルイカ合言葉zq"
HELD = "サクラエビ保全zq"


def start(data: Path, env: dict[str, str] | None = None) -> ServerProcess:
    server = ServerProcess(data, free_port(), free_port(socket.SOCK_DGRAM), env or {})
    server.start()
    return server


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The review server on SQLite and on PostgreSQL (the call log seeded into its store)."""
    data = tmp_path_factory.mktemp("review")
    url = request.getfixturevalue("pg_server").new_database() if request.param != "sqlite" else None
    build_org(data, url)
    env = {"VOICE_GRACE_SECONDS": "1", **({"VOICE_DATABASE_URL": url} if url else {})}
    srv = start(data, env)
    now = int(time.time() * 1000)
    items = [utterance(f"東 門 で 水 漏れ {i}", start_ms=now - i * 60_000) for i in range(3)]
    pg = None
    if url is not None:
        from voice_server.calllog.postgres import PgCallLog
        from voice_server.store.pg import PgDatabase

        pg = PgDatabase(url)
        seed(data, items, PgCallLog(pg))
    else:
        seed(data, items)
    try:
        yield srv
    finally:
        srv.stop()
        if pg is not None:
            pg.close()


def audit_rows(server: ServerProcess) -> list[dict[str, Any]]:
    with client(server) as c:
        signin(c, "root")
        rows = c.get("/api/v1/audit/export?format=json").json()["entries"]
    return [r for r in rows if not r["action"].startswith(("auth.", "audit."))]  # the observer


def test_n_audited_actions_give_exactly_n_rows_without_transcript_text(
    server: ServerProcess,
) -> None:
    before = len(audit_rows(server))
    c = client(server)
    signin(c, "boss")
    page = c.get("/dashboard/search", params={"q": "漏れ"})  # 1 search + 3 clip URLs
    assert page.status_code == 200 and page.text.count("<audio") == 3
    api = token(server, "boss", "ops", aud=Audience.API, role=Role.SUPERVISOR)
    bearer = {"Authorization": f"Bearer {api}"}
    items = c.get("/api/v1/utterances", params={"q": "水漏れ 0"}, headers=bearer).json()["items"]
    assert len(items) == 1  # 1 search + 1 clip URL
    for _ in range(3):  # signed URLs: audited when issued, not per (range) request
        r = httpx.get(server.url + items[0]["clip_url"], headers={"Range": "bytes=0-10"})
        assert r.status_code == 206
    assert c.get(f"/dashboard/utterances/{items[0]['id']}").status_code == 200  # view + URL
    assert (
        c.get("/dashboard/search/export", params={"format": "csv", "q": "漏れ"}).status_code == 200
    )
    r = c.get(f"/api/v1/clips/{items[0]['id']}.ogg", headers=bearer)  # direct fetch: 1
    assert r.status_code == 200 and r.headers["content-type"] == "audio/ogg"
    with client(server) as other:
        signin(other, "boss2")
        assert other.get("/api/v1/utterances", params={"channel": "ops"}).status_code == 403
    rows = audit_rows(server)[before:]
    assert [r["action"] for r in rows] == [
        "calllog.search",
        *["calllog.play"] * 3,
        "calllog.search",
        "calllog.play",
        "calllog.view",
        "calllog.play",
        "calllog.export",
        "calllog.play",
        "calllog.search",
    ]
    assert rows[0]["details"] == {
        "query": "漏れ",
        "filters": {},
        "results": 3,
        "more": False,
        "page": "first",
    }
    assert rows[8]["details"]["results"] == 3 and rows[8]["details"]["format"] == "csv"
    assert rows[-1]["actor"] == "boss2" and rows[-1]["result"] == "denied"
    assert all("東" not in json.dumps(r, ensure_ascii=False) for r in rows)  # no transcript
    c.close()
    verdict = server.cli("audit", "verify")
    assert "intact" in verdict


async def link(server: ServerProcess) -> Any:
    """A stand-in transcriber: authenticated like the sidecar, sends captions and commits."""
    ws = await websockets.connect(server.ws_url.replace("/ws", "/internal/transcription"))
    challenge = json.loads(await ws.recv())
    key = derive_key(load_or_create_key(server.data_dir), LINK_PURPOSE)
    await ws.send(json.dumps({"type": "hello", "v": 1, "mac": mac_hex(key, challenge["nonce"])}))
    assert json.loads(await ws.recv())["type"] == "welcome"
    return ws


async def viewer(server: ServerProcess, name: str, channel: str = "ops") -> Any:
    c = client(server)
    csrf = signin(c, name)
    headers = {"Origin": server.url, "Cookie": f"vs_session={c.cookies['vs_session']}"}
    url = server.url.replace("http", "ws", 1) + f"/dashboard/live/{channel}/ws"
    ws = await websockets.connect(url, additional_headers=headers)
    await ws.send(json.dumps({"type": "hello", "csrf": csrf}))
    c.close()
    return ws


async def next_of(ws: Any, kind: str, timeout: float = 5) -> dict[str, Any]:
    while True:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] == kind:
            return msg


async def test_the_live_view_shows_presence_captions_and_commits(server: ServerProcess) -> None:
    watch = await viewer(server, "boss")
    assert (await next_of(watch, "presence"))["participants"] == []
    await watch.send(json.dumps({"type": "ping"}))  # the page's heartbeat (static/heartbeat.js)
    await next_of(watch, "pong")
    peer = await Peer.connect(server.ws_url)
    await peer.join(token(server, "sato", "ops"), channel="ops", device_id="p1")
    online = (await next_of(watch, "presence"))["participants"]
    assert [(p["sub"], p["name"], p["online"], p["talking"]) for p in online] == [
        ("sato", "Sato", True, False)
    ]
    sidecar = await link(server)
    await sidecar.send(
        json.dumps(
            {"type": "partial", "id": "b1", "channel": "ops", "speaker_id": "sato", "text": "水 漏"}
        )
    )
    await sidecar.send(
        json.dumps(
            {"type": "partial", "id": "b2", "channel": "hq", "speaker_id": "x", "text": "他"}
        )
    )
    committed = utterance("<i>水 漏れ</i> です").as_api(None)
    await sidecar.send(json.dumps({"type": "committed", "utterance": committed}))
    partial = await next_of(watch, "partial")
    assert (partial["id"], partial["speaker_name"], partial["text"]) == ("b1", "Sato", "水 漏")
    done = await next_of(watch, "utterance")
    assert (done["id"], done["text"]) == (committed["id"], "<i>水 漏れ</i> です")
    await peer.send(type="leave")
    assert (await next_of(watch, "presence"))["participants"] == []
    await peer.close()
    await sidecar.close()
    await watch.close()


async def test_the_live_view_ends_within_2s_when_the_viewer_loses_the_channel(
    server: ServerProcess,
) -> None:
    url = server.env.get("VOICE_DATABASE_URL")
    accounts = Accounts.open(open_database(url, server.data_dir))
    accounts.service.assign(BY, "hq", "boss", Assignment.SUPERVISOR)
    watch = await viewer(server, "boss", "hq")
    await next_of(watch, "presence")
    accounts.service.unassign(BY, "hq", "boss", Assignment.SUPERVISOR)
    started = time.monotonic()
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await next_of(watch, "never", timeout=4)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert time.monotonic() - started <= 2.5


def test_the_scheduled_purge_leaves_no_canary_in_any_file_and_a_legal_hold_keeps_its_log(
    tmp_path: Path,
) -> None:
    build_org(tmp_path)
    db = Database(tmp_path / "voice.db")
    channels = ChannelStore(db)
    with db.transaction() as conn:
        channels.update(conn, "ops", display_name="運用", retention_days=30, legal_hold=False)
        channels.update(conn, "hq", display_name="本部", retention_days=30, legal_hold=True)
    old = int(time.time() * 1000) - 31 * DAY_MS
    expired = seed(
        tmp_path,
        [utterance(f"{CANARY} {i} 件", name=CANARY, start_ms=old + i) for i in range(20)],
    )
    unmoved = spool(tmp_path, expired[0])  # committed, the move to clips/ not done yet
    waiting = spool(tmp_path, utterance("", name=CANARY, start_ms=old + 50, clip=False))
    seed(tmp_path, [utterance(f"{HELD} 件", channel="hq", start_ms=old)])
    recent = seed(tmp_path, [utterance("今日 の 報告", start_ms=old + 30 * DAY_MS + 3600_000)])
    with db.connection() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert len(files_with(tmp_path, CANARY)) == 1 + 20 + 2  # the database, clips, spool
    server = start(tmp_path, {"VOICE_PURGE_INTERVAL_SECONDS": "1"})
    try:
        with client(server) as c:
            signin(c, "boss")  # reads the canary first: the server's connections have seen it
            # (never searched *for* it: audited queries stay in the append-only audit log)

            def ops() -> list[str]:
                items = c.get("/api/v1/utterances", params={"channel": "ops"}).json()["items"]
                return [u["id"] for u in items]

            assert len(ops()) in (21, 1)  # the first purge runs 1 s after start: it may be done
            deadline = time.monotonic() + 15
            while len(ops()) > 1:
                assert time.monotonic() < deadline, "the scheduled purge did not run"
                time.sleep(0.3)
            assert ops() == [u.id for u in recent]
        rows = [r for r in audit_rows(server) if r["action"] == "calllog.purge"]
        assert [(r["actor"], r["target"], r["details"]["utterances"]) for r in rows] == [
            ("system:purge", "channel:ops", 20)
        ]
    finally:
        server.stop()
    assert files_with(tmp_path, CANARY) == []
    assert files_with(tmp_path, "ホタルイカ") == []
    assert not any((tmp_path / str(u.clip)).exists() for u in expired)
    assert not unmoved.exists() and not waiting.exists()
    assert files_with(tmp_path, HELD) == ["voice.db"]  # the legal hold kept it
