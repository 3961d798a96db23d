"""Signaling against a real server process on 127.0.0.1 with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.servers import ServerProcess
from tests.wsclient import Peer
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import Audience, issue_token

pytestmark = pytest.mark.integration


def tok(
    server: ServerProcess,
    sub: str,
    *channels: str,
    key: bytes | None = None,
    aud: Audience = Audience.JOIN,
    ttl: int = 3600,
    now: int | None = None,
) -> str:
    return issue_token(
        key or load_or_create_key(server.data_dir),
        sub=sub,
        name=sub.title(),
        channels=channels or ("ops",),
        aud=aud,
        ttl_seconds=ttl,
        now=int(time.time()) if now is None else now,
    )


async def test_join_and_leave_are_announced_to_the_channel(server: ServerProcess) -> None:
    a = await Peer.connect(server.ws_url)
    joined = await a.join(tok(server, "alice"))
    assert joined["channel"]["name"] == "ops" and joined["you"]["sub"] == "alice"
    b = await Peer.connect(server.ws_url)
    joined_b = await b.join(tok(server, "bob"))
    assert [p["sub"] for p in joined_b["participants"]] == ["alice"]
    seen = await a.expect("participant_joined")
    assert seen["participant"]["sub"] == "bob"
    await b.send(type="leave", id="bye")
    assert (await b.expect("left"))["id"] == "bye"
    left = await a.expect("participant_left")
    assert left["participant"]["sub"] == "bob" and left["reason"] == "left"
    await a.close()
    await b.close()


async def test_same_user_and_device_replaces_the_old_session_without_ghost(
    server: ServerProcess,
) -> None:
    watcher = await Peer.connect(server.ws_url)
    await watcher.join(tok(server, "watcher"), device_id="w")
    first = await Peer.connect(server.ws_url)
    one = await first.join(tok(server, "carol"), device_id="phone")
    second = await Peer.connect(server.ws_url)
    two = await second.join(tok(server, "carol"), device_id="phone")
    assert two["session_id"] != one["session_id"] and not two["resumed"]
    assert (await first.expect("left"))["reason"] == "replaced"
    assert await first.closed() == 4409
    while True:
        gone = await watcher.expect("participant_left")
        if gone["participant"]["id"] == one["session_id"]:
            break
    assert gone["reason"] == "replaced"
    third = await Peer.connect(server.ws_url)
    listing = await third.join(tok(server, "dave"), device_id="x")
    carols = [p for p in listing["participants"] if p["sub"] == "carol"]
    assert [p["id"] for p in carols] == [two["session_id"]]
    for p in (watcher, second, third):
        await p.close()


async def test_session_resumes_within_the_grace_period(server: ServerProcess) -> None:
    watcher = await Peer.connect(server.ws_url)
    await watcher.join(tok(server, "w2"), device_id="w")
    p = await Peer.connect(server.ws_url)
    first = await p.join(tok(server, "erin"), device_id="d")
    await p.close()  # the network drops
    await asyncio.sleep(0.5)
    q = await Peer.connect(server.ws_url)
    again = await q.join(tok(server, "erin"), device_id="d", session_id=first["session_id"])
    assert again["resumed"] and again["session_id"] == first["session_id"]
    await asyncio.sleep(4.5)  # past the 4 s grace: the resumed session must still be there
    await q.send(type="ping", id="still")
    assert (await q.expect("pong"))["id"] == "still"
    assert not [
        m
        for m in watcher.inbox
        if m["type"] == "participant_left" and m["participant"]["id"] == first["session_id"]
    ]
    await q.close()
    await watcher.close()


async def test_detached_session_ends_after_the_grace_period(server: ServerProcess) -> None:
    watcher = await Peer.connect(server.ws_url)
    await watcher.join(tok(server, "w3"), device_id="w")
    p = await Peer.connect(server.ws_url)
    first = await p.join(tok(server, "frank"))
    await p.close()
    while True:
        left = await watcher.expect("participant_left", timeout=30)
        if left["participant"]["id"] == first["session_id"]:
            break
    assert left["reason"] == "disconnected"
    q = await Peer.connect(server.ws_url)
    again = await q.join(tok(server, "frank"), session_id=first["session_id"])
    assert not again["resumed"]
    await q.close()
    await watcher.close()


@pytest.mark.parametrize(
    ("case", "code", "close"),
    [
        ("missing", "token_missing", 4401),
        ("garbage", "token_invalid", 4401),
        ("forged", "token_invalid", 4401),
        ("expired", "token_expired", 4401),
        ("audience", "token_audience", 4401),
        ("other_channel", "channel_forbidden", 4403),
        ("unknown_channel", "channel_not_found", 4403),
    ],
)
async def test_bad_tokens_are_refused_before_any_session_exists(
    server: ServerProcess, case: str, code: str, close: int
) -> None:
    watcher = await Peer.connect(server.ws_url)
    await watcher.join(tok(server, f"watch-{case}"), device_id="w")
    tokens = {
        "missing": "",
        "garbage": "abc.def.ghi",
        "forged": tok(server, "mallory", key=b"z" * 32),
        "expired": tok(server, "mallory", ttl=60, now=int(time.time()) - 3600),
        "audience": tok(server, "mallory", aud=Audience.API),
        "other_channel": tok(server, "mallory", "hq"),
        "unknown_channel": tok(server, "mallory", "*"),
    }
    channel = "nowhere" if case == "unknown_channel" else "ops"
    p = await Peer.connect(server.ws_url)
    await p.send(type="join", token=tokens[case], channel=channel, device_id="d", id="j1")
    err = await p.expect("error")
    assert (err["code"], err["fatal"], err["id"]) == (code, True, "j1")
    assert await p.closed() == close
    await watcher.send(type="ping")
    await watcher.expect("pong")
    assert not [
        m
        for m in watcher.inbox
        if m["type"] == "participant_joined" and m["participant"]["sub"] == "mallory"
    ]
    await watcher.close()


async def test_messages_before_join_are_refused_and_the_socket_closed_after_five(
    server: ServerProcess,
) -> None:
    p = await Peer.connect(server.ws_url)
    for _ in range(5):
        await p.send(type="ping")
        assert (await p.expect("error"))["code"] == "not_joined"
    assert await p.closed() == 1008


async def test_oversized_frame_closes_with_1009(server: ServerProcess) -> None:
    p = await Peer.connect(server.ws_url)
    await p.join(tok(server, "big"))
    await p.ws.send("x" * (64 * 1024 + 10))
    assert await p.closed() == 1009


async def test_rate_limit_answers_rate_limited_and_keeps_the_connection(
    server: ServerProcess,
) -> None:
    p = await Peer.connect(server.ws_url)
    await p.join(tok(server, "chatty"))
    for i in range(120):
        await p.send(type="ping", id=str(i))
    await p.expect("error", code="rate_limited")
    await asyncio.sleep(1.5)
    await p.send(type="ping", id="after")
    await p.expect("pong", id="after")
    pongs = [m for m in p.inbox if m["type"] == "pong"]
    assert 50 <= len(pongs) <= 80
    await p.close()


async def test_token_refresh_extends_the_session_and_checks_the_subject(
    server: ServerProcess,
) -> None:
    p = await Peer.connect(server.ws_url)
    joined = await p.join(tok(server, "gina", ttl=3))
    assert (await p.expect("token_expiring"))["expires_at"] == joined["token_expires_at"]
    await p.send(type="refresh", token=tok(server, "someone-else"), id="r0")
    assert (await p.expect("error", id="r0"))["code"] == "token_subject"
    await p.send(type="refresh", token=tok(server, "gina", ttl=600), id="r1")
    refreshed = await p.expect("refreshed", id="r1")
    assert refreshed["expires_at"] > joined["token_expires_at"]
    await asyncio.sleep(3.5)  # past the first token's expiry: still in
    await p.send(type="ping", id="alive")
    await p.expect("pong", id="alive")
    await p.close()


async def test_expired_session_token_ends_the_session(server: ServerProcess) -> None:
    p = await Peer.connect(server.ws_url)
    await p.join(tok(server, "hank", ttl=2))
    err = await p.expect("error", timeout=30)
    assert (err["code"], err["fatal"]) == ("token_expired", True)
    assert await p.closed() == 4401


async def test_answer_without_media_offer_is_an_error(server: ServerProcess) -> None:
    p = await Peer.connect(server.ws_url)
    await p.join(tok(server, "ivan"))
    await p.send(type="answer", sdp="v=0", id="a")
    err = await p.expect("error", id="a")
    assert err["code"] in {"no_offer", "bad_answer"} and not err["fatal"]
    await p.close()


def test_health_ready_and_metrics(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    text = httpx.get(f"{server.url}/metrics").text
    for name in (
        "voice_sessions{",
        "voice_channels ",
        "voice_signaling_messages_total",
        "voice_ws_connections_total",
    ):
        assert name in text


def test_the_token_never_appears_in_the_server_log(server: ServerProcess) -> None:
    secret = tok(server, "logcheck")

    async def go() -> None:
        p = await Peer.connect(server.ws_url)
        await p.join(secret)
        await p.send(type="join", token=secret, channel="ops", device_id="x")
        await p.expect("error")
        await p.close()

    asyncio.run(go())
    signature = secret.rsplit(".", 1)[1]
    assert signature not in server.log()
    assert json.dumps(secret) not in server.log()


async def test_stats_reports_are_kept_per_participant_and_counted_per_path(
    server: ServerProcess,
) -> None:
    def metrics() -> str:
        return httpx.get(f"{server.url}/metrics").text

    a = await Peer.connect(server.ws_url)
    await a.join(tok(server, "stat-a"), device_id="stats-a")
    await a.send(type="stats", path="tcp", rtt_ms=42.0, loss=0.01, jitter_ms=3.5)
    await a.send(type="stats", path="udp", rtt_ms=1.0)  # too soon: ignored, counted
    await a.send(type="stats", path="udp", loss=7, id="bad")  # forged: refused
    assert (await a.expect("error", id="bad"))["code"] == "invalid_field"
    assert 'voice_participants_by_path{path="tcp"} 1' in metrics()
    assert 'voice_stats_reports_total{outcome="rate_limited"} 1' in metrics()
    await a.send(type="leave")
    await a.expect("left")
    deadline = time.monotonic() + 20
    while 'voice_participants_by_path{path="tcp"} 0' not in metrics():
        assert time.monotonic() < deadline, "the report outlived its session"
        await asyncio.sleep(0.1)
    await a.close()


def priority(sdp: str) -> int:
    """The UDP host candidate's priority in an offer."""
    line = next(x for x in sdp.splitlines() if x.startswith("a=candidate:") and " udp " in x)
    return int(line.split()[3])


async def test_ice_restart_gives_new_credentials_on_the_same_peer_connection_rate_limited(
    server: ServerProcess,
) -> None:
    from voice_server.media.dtls import Certificate
    from voice_server.media.sdp import new_ice_credentials
    from voice_server.sim.answer import build_answer, parse_offer

    p = await Peer.connect(server.ws_url)
    await p.join(tok(server, "rita"))
    first = await p.expect("offer")
    await p.send(type="ice_restart", id="early")  # nothing answered yet: nothing to restart
    assert (await p.expect("error", id="early"))["code"] == "no_offer"
    offer = parse_offer(first["sdp"])
    answer = build_answer(offer, credentials=new_ice_credentials(),
                          fingerprint=Certificate.generate().fingerprint, ssrc=42)  # fmt: skip
    await p.send(type="answer", sdp=answer)
    await p.send(type="ice_restart", id="r1")
    restart = await p.expect("offer", renegotiate=True, restart=True)
    again = parse_offer(restart["sdp"])
    assert (again.ice_ufrag, again.ice_pwd) != (offer.ice_ufrag, offer.ice_pwd)
    assert again.fingerprint == offer.fingerprint and again.mids == offer.mids  # same DTLS
    assert again.slot_ssrcs == offer.slot_ssrcs and isinstance(restart["revision"], int)
    assert priority(restart["sdp"]) > priority(first["sdp"])  # the new generation's pairs win
    await p.send(type="ice_restart", id="r2")  # too soon after the first
    err = await p.expect("error", id="r2")
    assert (err["code"], err["fatal"]) == ("ice_restart_too_often", False)
    # the message has no session field: naming another session is malformed, never obeyed
    await p.send(type="ice_restart", id="other", session_id="someone-else")
    assert (await p.expect("error", id="other"))["code"] in {"invalid_field", "bad_message"}
    await p.close()
