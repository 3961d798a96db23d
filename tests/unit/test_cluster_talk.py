"""Channels across nodes, the pure parts: the ``talk`` topic's events, the relay field of a node
report, the relay targets an owner plans, and what a hub knows of other nodes' sessions."""

from __future__ import annotations

from typing import Any

import pytest

from voice_server.cluster.relay_sync import RelayPeer, parse_relay, plan_listening, relay_text
from voice_server.cluster.talk_events import decode, encode
from voice_server.signaling.messages import Participant, ServerSlotBusy, ServerTalkStarted
from voice_server.signaling.remote_talk import RemotePeople, parse_relayed

PERSON = {"id": "s1", "sub": "u1", "name": "山田", "device_id": "d1", "channel": "ops"}


def _round(body: dict[str, Any], me: str = "b") -> Any:
    return decode(encode("a", "inc-1", body), me)


def test_events_round_trip_and_our_own_are_skipped() -> None:
    hear = {
        "kind": "hear",
        "channel": "ops",
        "message": ServerSlotBusy(slots=3).model_dump(mode="json"),
        "only": None,
        "exclude": None,
    }
    got = _round(hear)
    assert got is not None and got.kind == "hear" and got.origin == "a"
    assert parse_relayed(got.body["message"]) == ServerSlotBusy(slots=3)
    assert _round(hear, me="a") is None  # our own
    assert _round({"kind": "who", "people": [PERSON]}).body["people"] == [PERSON]
    assert _round({"kind": "sync"}) is not None
    assert _round({"kind": "listen", "channel": "ops"}) is not None


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "nope"},
        {"kind": "hear", "channel": "ops", "message": {"type": "joined"}, "only": None},
        {"kind": "hear", "channel": 3, "message": {"type": "slot_busy", "slots": 1}},
        {"kind": "hear", "channel": "ops", "message": {"type": "duck"}, "only": [1]},
        {"kind": "to", "session": "s1", "message": {"type": "error"}},
        {"kind": "who", "people": [{"id": "s1"}]},
        {"kind": "who", "people": "x"},
        {"kind": "gone", "sessions": [1]},
        {"kind": "listen"},
    ],
)
def test_malformed_events_are_skipped(body: dict[str, Any]) -> None:
    assert _round(body) is None


def test_an_event_of_another_version_or_without_origin_is_skipped() -> None:
    event = encode("a", "i", {"kind": "sync"})
    assert decode({**event, "v": 2}, "b") is None
    assert decode({**event, "origin": ""}, "b") is None
    assert decode({**event, "inc": 5}, "b") is None


def test_only_talk_messages_are_taken_from_another_node() -> None:
    speaker = Participant(id="s1", sub="u", name="n", device_id="d")
    started = ServerTalkStarted(speaker=speaker, slot=1, channel="ops", priority=2, kind="speech")
    again = parse_relayed(started.model_dump(mode="json"))
    assert again == started
    assert parse_relayed({"type": "joined", "session_id": "x"}) is None
    assert parse_relayed({"type": "talk_started", "slot": "x"}) is None
    assert parse_relayed("text") is None


def test_relay_field_round_trips_and_bad_ones_mean_no_relay() -> None:
    text = relay_text(7, 123456, "10.0.0.5", 41000)
    assert parse_relay(text) == RelayPeer(7, 123456, "10.0.0.5", 41000)
    assert parse_relay(relay_text(0, 0, "::1", 1)) == RelayPeer(0, 0, "::1", 1)
    for bad in ("", "7 1 10.0.0.5", "256 1 10.0.0.5 1", "1 1 host.example 1", "1 1 10.0.0.1 0",
                "1 4294967296 10.0.0.1 5", "a b c d"):  # fmt: skip
        assert parse_relay(bad) is None, bad


def test_an_owner_plans_each_node_with_sessions_once_per_channel() -> None:
    counts = {"ops": {"a": 2, "b": 1, "c": 0}, "fire": {"b": 3, "ghost": 1}}
    plan = plan_listening(counts, {"a": 0, "b": 1, "c": 2})
    # a node with no sessions left, or without a known relay, is sent nothing
    assert plan == {0: frozenset({"ops"}), 1: frozenset({"ops", "fire"})}


def test_remote_people_are_kept_per_node_and_bounded() -> None:
    people = RemotePeople(limit=3)
    people.add("a", [PERSON, {**PERSON, "id": "s2"}])
    people.add("b", [{**PERSON, "id": "s3", "name": "<b>x</b>"}])
    assert people.get("s1") is not None and people.get("s1").name == "山田"  # type: ignore[union-attr]
    people.gone("b", ["s1"])  # not b's to remove
    assert people.get("s1") is not None
    people.replace("a", [{**PERSON, "id": "s4"}])
    assert people.get("s1") is None and people.get("s4") is not None
    assert people.get("s3") is not None
    people.add("c", [{**PERSON, "id": f"x{i}"} for i in range(3)])
    assert len(people) == 3 and people.dropped == 2
    people.retain_nodes(lambda node: node != "c")
    assert len(people) == 0
    people.add("a", [{"id": "s9"}])  # malformed: skipped
    assert len(people) == 0


def test_remote_people_coming_and_going_are_told_once_per_channel() -> None:
    told: list[tuple[str, str, bool]] = []
    people = RemotePeople(limit=3, on_change=lambda c, p, joined: told.append((c, p.id, joined)))
    people.add("a", [PERSON, {**PERSON, "id": "s2"}])
    people.add("a", [PERSON])  # known already: nothing new
    assert told == [("ops", "s1", True), ("ops", "s2", True)]
    assert sorted(p.id for p in people.in_channel("ops")) == ["s1", "s2"]
    told.clear()
    people.add("a", [{**PERSON, "channel": "hq"}])  # s1 switched channel on its node
    assert told == [("ops", "s1", False), ("hq", "s1", True)]
    told.clear()
    people.replace("a", [{**PERSON, "channel": "hq"}, {**PERSON, "id": "s3"}])  # s2 is gone
    assert told == [("ops", "s2", False), ("ops", "s3", True)]
    told.clear()
    people.gone("a", ["s3"])
    people.retain_nodes(lambda node: node != "a")  # a died
    assert told == [("ops", "s3", False), ("hq", "s1", False)] and len(people) == 0


def test_a_consoles_other_channels_count_as_the_nodes_while_it_hears_them() -> None:
    from types import SimpleNamespace

    from voice_server.cluster.keys import Keys
    from voice_server.cluster.membership import NodeMembership
    from voice_server.cluster.timing import Timing

    client: Any = SimpleNamespace(register_script=lambda script: None)
    m = NodeMembership(
        client, Keys(), Timing.derived(1, 5), node_id="a", incarnation="i", base_url="http://a"
    )
    m.joined("con", "ops")
    m.joined("x", "hq")
    m.routed("con", frozenset({"ops", "hq", "yard"}))  # monitors hq and yard
    assert m.map.refs.items() == [("hq", 2), ("ops", 1), ("yard", 1)]
    m.routed("con", frozenset({"ops", "hq"}))
    assert m.map.refs.items() == [("hq", 2), ("ops", 1)]
    m.routed("ghost", frozenset({"fire"}))  # no such session: nothing
    m.ended("con")  # its route's channels go with it
    assert m.map.refs.items() == [("hq", 1)]


def test_an_owner_sends_a_node_its_audio_as_soon_as_it_says_it_has_a_member() -> None:
    from types import SimpleNamespace

    from voice_server.cluster.relay_sync import RelaySync
    from voice_server.media.relay_targets import RelayTargets

    relay: Any = SimpleNamespace(index=0, targets=RelayTargets(0))
    sync = RelaySync(SimpleNamespace(), relay, 1.0)  # type: ignore[arg-type]
    sync.nodes = {"b": ("ib", RelayPeer(1, 7, "10.0.0.2", 4000))}
    sync.listen("b", "ops")
    sync.listen("b", "hq")
    assert relay.targets.targets("ops") == (1,) and relay.targets.targets("hq") == (1,)
    sync.listen("ghost", "ops")  # not read yet: the next round reads everything at once
    assert sync._wake.is_set()
    sync.set_listening({1: frozenset({"hq"})})  # the round's read of the map decides
    assert relay.targets.targets("ops") == () and relay.targets.targets("hq") == (1,)


def test_a_node_missing_from_redis_for_a_moment_keeps_getting_audio() -> None:
    """After a Redis outage every report and channel entry expired at once; each node writes
    its own back at its next round: meanwhile its peers keep it (for the node TTL)."""
    from types import SimpleNamespace

    from voice_server.cluster.nodes import NodeInfo
    from voice_server.cluster.relay_sync import RelaySync
    from voice_server.media.relay_targets import RelayTargets

    relay: Any = SimpleNamespace(index=0, targets=RelayTargets(0), peers={}, addresses={})
    sync = RelaySync(SimpleNamespace(node_id="a"), relay, 1.0, grace_s=5.0)  # type: ignore[arg-type]
    b = NodeInfo("b", "ib", 0.0, "", 0, relay=relay_text(1, 7, "10.0.0.2", 4000))
    sync.set_nodes([b], now=100.0)
    assert relay.peers == {1: 7}
    sync.set_nodes([], now=103.0)  # b's report gone for 3 s: still a peer
    assert relay.peers == {1: 7}
    plan = sync._kept({1: frozenset({"ops"})}, {"ops"}, now=103.0)
    assert sync._kept({}, {"ops"}, now=104.0) == plan  # its entry gone a moment: still sent
    assert sync._kept({}, {"ops"}, now=108.5) == {}  # gone for good
    sync.set_nodes([], now=106.0)  # past the grace: dropped
    assert relay.peers == {}
    b2 = NodeInfo("b", "ib2", 0.0, "", 0, relay=relay_text(1, 9, "10.0.0.2", 4001))
    sync.set_nodes([b], now=110.0)
    sync.set_nodes([b2], now=110.5)  # a restart replaces it at once
    assert relay.peers == {1: 9} and relay.addresses == {1: ("10.0.0.2", 4001)}
