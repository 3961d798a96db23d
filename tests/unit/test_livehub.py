"""The live view's hub: presence from the session registry, partial captions and committed
utterances per channel, and bounded viewer queues that drop the oldest and count."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from voice_server.identity.principal import Principal
from voice_server.identity.tokens import Role
from voice_server.signaling.diagnostics import Diagnostics, Report
from voice_server.signaling.livehub import LiveHub, Viewer
from voice_server.signaling.messages import Participant, ServerTalkStarted
from voice_server.signaling.sessions import SessionRegistry


def hub_with(*people: tuple[str, str, str]) -> tuple[LiveHub, SessionRegistry]:
    registry = SessionRegistry(10)
    for sub, name, channel in people:
        p = Principal(sub, name, Role.STAFF, frozenset({channel}), False, 2**40)
        registry.open(p, "d1", channel, 0.0)
    fake: Any = SimpleNamespace(registry=registry, diagnostics=Diagnostics())
    return LiveHub(fake, ZoneInfo("Asia/Tokyo"), queue_limit=4), registry


def drain(viewer: Viewer) -> list[dict[str, Any]]:
    out = [json.loads(t) for t in viewer.queue]
    viewer.queue.clear()
    return out


def test_a_viewer_gets_presence_then_talk_changes_of_its_channel_only() -> None:
    live, registry = hub_with(("sato", "佐藤", "ops"), ("mori", "森", "hq"))
    viewer = live.attach("ops")
    assert drain(viewer) == [
        {
            "type": "presence",
            "participants": [
                {
                    "sub": "sato",
                    "name": "佐藤",
                    "device_id": "d1",
                    "online": True,
                    "talking": False,
                    "diag": None,
                }
            ],
        }
    ]
    session = registry.in_channel("ops")[0]
    session.talking_slot = 1
    speaker = Participant(
        id=session.id, sub="sato", name="佐藤", device_id="d1", talking=True, slot=1
    )
    live.on_signal("ops", ServerTalkStarted(speaker=speaker, slot=1))
    live.on_signal("hq", ServerTalkStarted(speaker=speaker, slot=1))
    assert [m["participants"][0]["talking"] for m in drain(viewer)] == [True]


def test_captions_and_commits_reach_the_channels_viewers() -> None:
    live, _ = hub_with(("sato", "佐藤", "ops"))
    viewer, other = live.attach("ops"), live.attach("hq")
    drain(viewer), drain(other)
    live.on_partial(
        {"type": "partial", "id": "b1", "channel": "ops", "speaker_id": "sato", "text": "水 漏"}
    )
    live.on_committed(
        {
            "type": "committed",
            "utterance": {
                "id": "b1",
                "channel": "ops",
                "speaker_id": "sato",
                "speaker_name": "佐藤",
                "start": "2026-06-01T00:00:00+00:00",
                "text": "<b>水 漏れ</b>",
            },
        }
    )
    live.on_committed({"type": "committed", "utterance": "garbage"})
    got = drain(viewer)
    assert got[0] == {
        "type": "partial",
        "id": "b1",
        "speaker_id": "sato",
        "speaker_name": "佐藤",
        "text": "水 漏",
    }
    assert got[1]["type"] == "utterance" and got[1]["time"] == "2026-06-01 09:00:00"
    assert got[1]["text"] == "<b>水 漏れ</b>"  # text stays text: the page sets textContent
    assert drain(other) == []


def test_a_slow_viewer_loses_its_oldest_messages_and_they_are_counted() -> None:
    live, _ = hub_with()
    viewer = live.attach("ops")
    for i in range(10):
        live.on_partial({"channel": "ops", "id": f"b{i}", "speaker_id": "x", "text": str(i)})
    assert len(viewer.queue) == 4 and viewer.dropped == 7  # 11 offered (presence first)
    assert [m["text"] for m in drain(viewer)] == ["6", "7", "8", "9"]
    assert live.counters.dropped == 7
    live.detach(viewer)
    assert live.viewers("ops") == 0
    live.on_partial({"channel": "ops", "id": "late", "speaker_id": "x", "text": "x"})
    assert viewer.queue == type(viewer.queue)()


def test_a_participants_diagnostics_reach_the_live_view() -> None:
    live, registry = hub_with(("sato", "佐藤", "ops"))
    viewer = live.attach("ops")
    drain(viewer)
    session = registry.in_channel("ops")[0]
    live._hub.diagnostics.record(session.id, Report("tcp", 41.5, 0.02, 3.0, 0.01, at=1.0))
    live.on_stats("ops")
    live.on_stats("hq")  # nobody watches hq
    (msg,) = drain(viewer)
    assert msg["participants"][0]["diag"] == {
        "path": "tcp",
        "rtt_ms": 41.5,
        "loss": 0.02,
        "jitter_ms": 3.0,
        "concealed_ratio": 0.01,
    }
