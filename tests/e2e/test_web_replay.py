"""Missed-message replay in Chromium: a member whose phone lost its connection comes back, sees
"2 messages while you were away" and plays the two bursts said meanwhile, oldest first, on one
tap; the burst heard before going away and someone else's direct talk are not among them, and a
burst's text appears once it commits."""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.audio import write_bursts
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.servers import ServerProcess
from tests.voiceclients import start_client
from voice_server.calllog.model import Utterance, new_burst_id
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

pytestmark = pytest.mark.e2e


def silence(path: Path, seconds: float = 2.0) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(bytes(2 * int(48000 * seconds)))
    return path


def bursts(path: Path, count: int) -> Path:
    """``count`` 1.2 s tone bursts, each followed by 1.6 s of silence."""
    write_bursts(path, 440.0, on_seconds=1.2, off_seconds=1.6)
    with wave.open(str(path), "rb") as r:
        params, frames = r.getparams(), r.readframes(r.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(frames * count)
    return path


def connected(page: Any) -> bool:
    pair = page.evaluate("[document.body.dataset.state, document.body.dataset.media]")
    return bool(pair == ["joined", "connected"])


def spoken_by(server: ServerProcess, token: str, sub: str) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{server.url}/api/v1/replay/ops",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return [i for i in r.json()["items"] if i["speaker_id"] == sub]


def talk(server: ServerProcess, tmp: Path, name: str, count: int) -> None:
    client = start_client(
        server, tmp, name, play=bursts(tmp / f"{name}{count}.wav", count), duration=3 * count + 3
    )
    assert client.wait() == 0, client.stderr


def test_back_from_the_basement_a_member_plays_what_was_said_while_away_in_order(
    pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    srv = e2e_server
    bob_token = srv.token("bob", "ops")
    link = device_link(srv, srv.token("alice", "ops"))
    page = open_page(pw, link, audio=silence(tmp_path / "quiet.wav"))
    context = page.context
    try:
        wait_for(lambda: connected(page), "alice joined with media")
        talk(srv, tmp_path, "bob", 1)  # heard: alice is connected
        wait_for(lambda: len(spoken_by(srv, bob_token, "bob")) == 1, "bob's first burst listed")
        # the phone drops out (forced: the app is navigated away, its socket and peer connection
        # gone) and the server lets its session go
        watcher = start_client(srv, tmp_path, "carol", duration=60, record=False)
        watcher.wait_event("media", state="connected", timeout=45)
        page.goto("about:blank")
        watcher.wait_event("participant_left", timeout=45)
        talk(srv, tmp_path, "bob", 2)  # missed
        wait_for(lambda: len(spoken_by(srv, bob_token, "bob")) == 3, "bob's three bursts listed")
        # a direct talk from bob to carol meanwhile: never alice's to replay
        now = int(time.time() * 1000)
        direct = Utterance(
            id=new_burst_id(now - 500),
            channel="ops",
            speaker_id="bob",
            speaker_name="bob",
            start_ms=now - 500,
            end_ms=now - 100,
            text="only for carol",
            kind="direct",
            target_sub="carol",
        )
        db = Database(srv.data_dir / "voice.db")
        SqliteCallLog(db).add_utterance(direct, committed_ms=now)
        spoken = [i for i in spoken_by(srv, bob_token, "bob") if i["kind"] == "speech"]
        items = sorted(spoken, key=lambda i: i["start"])
        heard, missed = items[0], items[1:]

        page.goto(link)  # back: the same phone opens the app again
        wait_for(lambda: connected(page), "alice back with media")
        banner = wait_for(
            lambda: page.is_visible("#replay-banner") and page.text_content("#replay-count"),
            "the missed-messages banner",
        )
        assert banner == "2 messages while you were away"
        listed = page.eval_on_selector_all("#replay-list li", "els => els.map(e => e.dataset.id)")
        assert direct.id not in listed and heard["id"] in listed
        page.click("#replay-play")
        played = wait_for(
            lambda: (
                page.evaluate("window.voiceReplay.played.length") == 2
                and page.evaluate("window.voiceReplay.played")
            ),
            "both missed bursts played to their end",
            timeout=60,
        )
        assert played == [m["id"] for m in missed]  # oldest first, the heard one not replayed
        # the transcriber commits one of them: its text shows in the list
        first = missed[0]
        SqliteCallLog(db).add_utterance(
            Utterance(
                id=first["id"],
                channel="ops",
                speaker_id="bob",
                speaker_name="bob",
                start_ms=int(time.time() * 1000) - 10_000,
                end_ms=int(time.time() * 1000) - 9000,
                text="<b>東門</b>で水漏れ",
                clip=None,
            ),
            committed_ms=int(time.time() * 1000),
        )
        db.close()
        selector = f'#replay-list li[data-id="{first["id"]}"] .replay-text'
        wait_for(lambda: page.text_content(selector) == "<b>東門</b>で水漏れ", "the committed text")
        assert page.locator(f'#replay-list li[data-id="{first["id"]}"] b').count() == 0
        assert watcher.wait() == 0
        assert not page.errors, page.errors
    finally:
        context.browser.close()
