"""The live view across nodes, its pure parts: the event format, ignoring our own events, the
bounded publish queue, the other nodes' picture, the live hub fed by both, and the relay's
reactions (no Redis: its client is never used here)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from tests.unit.test_livehub import drain, hub_with
from voice_server.cluster.event_queue import EventQueue
from voice_server.cluster.keys import Keys
from voice_server.cluster.live_events import decode, encode
from voice_server.cluster.live_relay import LiveRelay
from voice_server.signaling.livehub import LiveHub
from voice_server.signaling.liveremote import RemoteLive
from voice_server.signaling.messages import Participant, ServerTalkStarted

ROW = {"sub": "kim", "name": "Kim", "device_id": "d", "online": True, "talking": True}


def test_events_round_trip_and_ours_or_malformed_ones_are_skipped() -> None:
    body = {"kind": "presence", "channel": "ops", "participants": [ROW]}
    wire = json.loads(json.dumps(encode("a", "i1", body)))
    got = decode(wire, "b")
    assert got is not None and (got.origin, got.incarnation, got.body) == ("a", "i1", body)
    assert decode(wire, "a") is None  # our own
    for bad in (
        {**wire, "v": 2},
        {**wire, "origin": ""},
        {**wire, "inc": 5},
        {**wire, "kind": "nope"},
        {**wire, "channel": 3},
        {**wire, "participants": ["x"]},
        encode("a", "i", {"kind": "state", "channels": {"ops": "x"}}),
        encode("a", "i", {"kind": "line", "channel": "ops", "line": "x"}),
    ):
        assert decode(bad, "b") is None, bad
    sync = decode(encode("a", "i", {"kind": "sync"}), "b")
    assert sync is not None and sync.kind == "sync"


def test_the_publish_queue_drops_its_oldest_and_counts() -> None:
    async def main() -> None:
        q = EventQueue(2)
        for i in range(5):
            q.offer({"n": i})
        assert q.dropped == 3 and len(q) == 2
        assert [await q.take(), await q.take()] == [{"n": 3}, {"n": 4}]
        waiter = asyncio.create_task(q.take())
        await asyncio.sleep(0)
        assert not waiter.done()
        q.offer({"n": 9})
        assert await asyncio.wait_for(waiter, 5) == {"n": 9}

    asyncio.run(main())
    with pytest.raises(ValueError):
        EventQueue(0)


def test_the_remote_picture_by_origin_incarnation_and_liveness() -> None:
    r = RemoteLive()
    assert r.update("a", "i1", "ops", [ROW]) == {"ops"}
    assert r.update("b", "j1", "ops", [{**ROW, "sub": "lee"}]) == {"ops"}
    assert [(p["sub"], p["node"]) for p in r.participants("ops")] == [("kim", "a"), ("lee", "b")]
    assert r.update("a", "i1", "ops", []) == {"ops"}
    assert r.update("a", "i1", "ops", []) == set()
    r.update("a", "i1", "hq", [ROW])
    assert r.update("a", "i2", "ops", [ROW]) == {"hq", "ops"}  # a restarted: hq forgotten
    assert r.participants("hq") == []
    assert r.replace("a", "i2", {"hq": [ROW], "x": []}) == {"ops", "hq"}
    assert r.participants("ops") == [{**ROW, "sub": "lee", "node": "b"}]
    assert r.retain({"a"}) == {"ops"} and r.origins() == ["a"]
    assert r.clear() == {"hq"} and r.origins() == []


def clustered() -> tuple[LiveHub, Any, list[dict[str, Any]]]:
    live, registry = hub_with(("sato", "佐藤", "ops"), ("mori", "森", "hq"))
    sent: list[dict[str, Any]] = []
    live.node_id = "b"
    live.publish = sent.append
    return live, registry, sent


def test_the_hub_publishes_local_changes_even_unwatched_and_shows_remote_ones() -> None:
    live, registry, sent = clustered()
    session = registry.in_channel("ops")[0]
    session.talking_slot = 1
    speaker = Participant(id=session.id, sub="sato", name="佐藤", device_id="d1", talking=True)
    live.on_signal("ops", ServerTalkStarted(speaker=speaker, slot=1))
    assert sent[-1]["kind"] == "presence" and sent[-1]["channel"] == "ops"
    assert [(p["sub"], p["talking"], p["node"]) for p in sent[-1]["participants"]] == [
        ("sato", True, "b")
    ]
    live.on_partial({"channel": "ops", "id": "u1", "speaker_id": "sato", "text": "は"})
    assert sent[-1] == {
        "kind": "line",
        "channel": "ops",
        "line": dict(
            type="partial", id="u1", speaker_id="sato", speaker_name="佐藤", text="は", node="b"
        ),
    }
    assert live.local_state().keys() == {"ops", "hq"}

    ops, hq = live.attach("ops"), live.attach("hq")
    drain(ops), drain(hq)
    live.on_remote("a", "i1", {"kind": "presence", "channel": "ops", "participants": [ROW]})
    got = drain(ops)
    assert [(p["sub"], p["node"], p["talking"]) for p in got[0]["participants"]] == [
        ("sato", "b", True),
        ("kim", "a", True),
    ]
    line = {"type": "utterance", "id": "u2", "text": "x"}
    live.on_remote("a", "i1", {"kind": "line", "channel": "ops", "line": line})
    assert drain(ops) == [{**line, "node": "a"}]
    assert drain(hq) == []  # a viewer of another channel hears nothing of ops
    live.clear_remote()  # no ghost talker once the picture is cleared
    assert [p["sub"] for p in drain(ops)[0]["participants"]] == ["sato"]
    live.on_remote("a", "i1", {"kind": "state", "channels": {"ops": [ROW]}})
    live.retain_remote({"c"})
    subs = [[p["sub"] for p in m["participants"]] for m in drain(ops)]
    assert subs == [["sato", "kim"], ["sato"]]


def test_one_box_publishes_nothing_and_tags_nothing() -> None:
    live, _ = hub_with(("sato", "佐藤", "ops"))
    viewer = live.attach("ops")
    assert "node" not in drain(viewer)[0]["participants"][0]


class Target:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_remote(self, origin: str, incarnation: str, event: dict[str, Any]) -> None:
        self.calls.append(("remote", origin, event["kind"]))

    def retain_remote(self, live: set[str]) -> None:
        self.calls.append(("retain", live))

    def clear_remote(self) -> None:
        self.calls.append(("clear",))

    def local_state(self) -> dict[str, list[dict[str, Any]]]:
        return {"ops": [ROW]}


def test_the_relay_ignores_its_own_answers_sync_and_resyncs() -> None:
    async def main() -> None:
        target = Target()

        async def nodes() -> set[str]:
            return {"a"}

        none: Any = SimpleNamespace()
        relay = LiveRelay(
            none, none, Keys(), target, nodes, node_id="b", incarnation="ib", prune_s=1, limit=8
        )
        await relay._on_event("live", encode("b", "ib", {"kind": "sync"}))
        assert target.calls == [] and len(relay.queue) == 0
        await relay._on_event("live", encode("a", "ia", {"kind": "sync"}))
        assert await relay.queue.take() == {"kind": "state", "channels": {"ops": [ROW]}}
        body = {"kind": "presence", "channel": "ops", "participants": []}
        await relay._on_event("live", encode("a", "ia", body))
        assert target.calls == [("remote", "a", "presence")] and relay.received == 2
        await relay.on_resync()
        assert target.calls[-1] == ("clear",)
        assert [await relay.queue.take(), await relay.queue.take()] == [
            {"kind": "sync"},
            {"kind": "state", "channels": {"ops": [ROW]}},
        ]
        names = {f.name for f in relay.families()}
        assert "voice_cluster_events_dropped_total" in names

    asyncio.run(main())
