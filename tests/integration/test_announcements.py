"""Spoken announcements with real processes: a supervisor's Japanese announcement is heard by
voice-clients in the two target channels and not in a third, logged once per reached channel
with one shared clip, and "who heard it" names the member who was offline."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.announcing import wait_done
from tests.audio import read_mono
from tests.servers import ServerProcess, running_server
from tests.voiceclients import ClientRun, start_client

pytestmark = pytest.mark.integration
pytest.importorskip("pyopenjtalk")

TEXT = "避難所Aは17時に閉鎖します"
BLOCK = 960


def loud_seconds(path: Path, threshold: int = 1500) -> float:
    samples, rate = read_mono(path)
    loud = sum(
        1
        for i in range(0, len(samples) - BLOCK, BLOCK)
        if max(abs(x) for x in samples[i : i + BLOCK]) > threshold
    )
    return loud * BLOCK / rate


def org(server: ServerProcess) -> None:
    server.cli("users", "add", "boss", "--role", "supervisor", "--no-password")
    for name, ch in (("ma", "a"), ("mb", "b"), ("mc", "c"), ("away", "a")):
        server.cli("users", "add", name, "--role", "staff", "--no-password", "--channel", ch)
    for ch in ("a", "b", "c"):
        server.cli("channels", "assign", ch, "--supervisor", "boss")


def listener(server: ServerProcess, tmp: Path, name: str, channel: str) -> ClientRun:
    return start_client(server, tmp, name, channel=channel, duration=30)


def test_an_announcement_reaches_two_channels_not_a_third_and_says_who_has_not_heard_it(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("a", "b", "c")) as server:
        org(server)
        token = server.token("boss", "a", "b", "c", role="supervisor", aud="api")
        clients = {ch: listener(server, tmp_path, f"m{ch}", ch) for ch in ("a", "b", "c")}
        for cl in clients.values():
            cl.wait_event("media", state="connected", timeout=45)
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            r = c.post(
                f"{server.url}/api/v1/announcements", json={"text": TEXT, "channels": ["a", "b"]}
            )
            assert r.status_code == 201, r.text
            ann_id = r.json()["id"]
            for ch in ("a", "b"):
                started = clients[ch].wait_event("talk_started", timeout=45, kind="announcement")
                assert started["speaker"]["name"] == "boss"
            done = wait_done(c, server.url, ann_id)
            assert done["status"] == "done", done
            fate = {x["channel"]: x for x in done["channels"]}
            assert set(fate) == {"a", "b"}
            assert all(x["status"] == "played" for x in fate.values())
            assert fate["a"]["not_heard"] == ["away"]  # the member who never connected
            assert "ma" in fate["a"]["heard"] and fate["b"]["not_heard"] == []
            # one call-log row per reached channel, the typed text, one shared clip
            rows = {}
            for ch in ("a", "b", "c"):
                items = c.get(f"{server.url}/api/v1/utterances", params={"channel": ch}).json()
                rows[ch] = [u for u in items["items"] if u["kind"] == "announcement"]
            assert rows["c"] == []
            for ch in ("a", "b"):
                (row,) = rows[ch]
                assert row["id"] == f"{ann_id}:{ch}" and row["text"] == TEXT
                assert row["speaker_id"] == "boss"
                clip = c.get(server.url + row["clip_url"])
                assert clip.status_code == 200 and clip.content[:4] == b"OggS"
            shared = list((tmp_path / "srv" / "clips" / "_shared").iterdir())
            assert [p.name for p in shared] == [f"{ann_id}.ogg"]
            # refused: a channel not supervised, empty text, unspeakable text
            for body, code in (
                ({"text": TEXT, "channels": ["zzz"]}, "no_such_channel"),
                ({"text": "  ", "channels": ["a"]}, "empty_text"),
                ({"text": "!!!", "channels": ["a"]}, "unspeakable_text"),
                ({"text": "あ" * 501, "channels": ["a"]}, "text_too_long"),
            ):
                r = c.post(f"{server.url}/api/v1/announcements", json=body)
                assert 400 <= r.status_code < 500 and r.json()["error"] == code, r.text
        staff = server.token("ma", "a", aud="api")
        r = httpx.post(
            f"{server.url}/api/v1/announcements",
            json={"text": TEXT, "channels": ["a"]},
            headers={"Authorization": f"Bearer {staff}"},
        )
        assert r.status_code == 403 and r.json()["error"] == "channel_not_supervised"
        for cl in clients.values():
            assert cl.wait(timeout=60) == 0, cl.stderr
    assert loud_seconds(clients["a"].record) > 1.5  # type: ignore[arg-type]
    assert loud_seconds(clients["b"].record) > 1.5  # type: ignore[arg-type]
    assert loud_seconds(clients["c"].record) < 0.1  # type: ignore[arg-type]
    assert clients["c"].of("talk_started") == []
