"""The pure parts of the cluster layer: key layout, timing rules, backoff, a node's channel
reference counts, inbox entries and the seen window."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest

from voice_server.cluster.backoff import Backoff
from voice_server.cluster.keys import Keys
from voice_server.cluster.messages import InboxMessage, SeenWindow
from voice_server.cluster.refs import ChannelRefs
from voice_server.cluster.timing import Timing


def test_keys_share_one_hash_slot_and_kinds_never_collide() -> None:
    k = Keys("prod-1")
    names = [
        k.nodes, k.node("n1"), k.epoch, k.owner("c"), k.channel_nodes("c"), k.channel_refs("c"),
        k.session("s"), k.inbox("n1"), k.events("live"),
    ]  # fmt: skip
    assert all(n.startswith("{prod-1}:") for n in names)
    assert len(set(names)) == len(names)
    # a channel named like another kind's key stays inside its own kind
    assert k.owner("chan:x") != k.channel_nodes("x")
    assert k.topic_of(k.events("alerts")) == "alerts"
    with pytest.raises(ValueError):
        k.topic_of("{other}:events:alerts")


@pytest.mark.parametrize("prefix", ["", "a b", "x}", "{y", "é", "a" * 65])
def test_keys_refuse_odd_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError):
        Keys(prefix)


def test_deployments_are_apart() -> None:
    assert Keys("a").owner("c") != Keys("b").owner("c")


def test_timing_defaults_follow_the_issue() -> None:
    t = Timing()
    assert (t.heartbeat_s, t.node_ttl_s, t.reassert_s) == (1.0, 5.0, 2.0)
    assert Timing.ms(0.0001) == 1 and Timing.ms(1.5) == 1500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heartbeat_s": 0},
        {"heartbeat_s": 3.0},  # TTL 5 s < two heartbeats
        {"lease_s": 1.5},
        {"reassert_s": 4.0},  # entry TTL 6 s < two re-assertions
        {"session_ttl_s": -1},
    ],
)
def test_timing_refuses_what_would_flap(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Timing(**kwargs)


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(0.1, 1.0, 2.0, rand=lambda: 1.0)
    assert [round(b.next(), 3) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    b.reset()
    assert b.next() == pytest.approx(0.1)
    low = Backoff(0.1, 1.0, rand=lambda: 0.0)
    assert low.next() == pytest.approx(0.05)  # never less than half the step
    with pytest.raises(ValueError):
        Backoff(0.0)
    with pytest.raises(ValueError):
        Backoff(1.0, 0.5)


def test_channel_refs_count_per_channel_and_never_go_negative() -> None:
    r = ChannelRefs()
    assert [r.add("a"), r.add("a"), r.add("b")] == [1, 2, 1]
    assert r.items() == [("a", 2), ("b", 1)]
    assert r.remove("a") == 1 and r.remove("a") == 0
    assert r.remove("a") == 0 and r.count("a") == 0
    assert r.items() == [("b", 1)]


def test_inbox_message_round_trip() -> None:
    m = InboxMessage("migrate", "node-a", {"session": "s1", "to": "https://b.example"})
    back = InboxMessage.from_fields("1-0", m.fields())
    assert back == InboxMessage(m.kind, m.sender, m.body, m.uid, "1-0")
    assert InboxMessage("x", "n").uid != InboxMessage("x", "n").uid


@pytest.mark.parametrize(
    "fields",
    [{}, {"uid": "u", "kind": "k", "from": "n", "body": "[1]"}, {"uid": "u", "kind": "k",
     "from": "n", "body": "{"}],
)  # fmt: skip
def test_inbox_message_refuses_foreign_entries(fields: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        InboxMessage.from_fields("1-0", fields)


def test_seen_window_forgets_the_oldest() -> None:
    w = SeenWindow(3)
    assert [w.first_time(u) for u in "abca"] == [True, True, True, False]
    assert w.first_time("d")  # evicts "a"
    assert w.first_time("a")
    assert not w.first_time("d")
    ids = (str(i) for i in itertools.count())
    assert all(w.first_time(next(ids)) for _ in range(10))


def test_the_cluster_modules_do_not_import_redis_until_a_client_is_opened() -> None:
    code = (
        "import sys, voice_server.cluster.channel_map, voice_server.cluster.events, "
        "voice_server.cluster.health, voice_server.cluster.inbox, voice_server.cluster.nodes, "
        "voice_server.cluster.ownership, voice_server.cluster.sessions, "
        "voice_server.cluster.membership, voice_server.cluster.drain, "
        "voice_server.cluster.startup, voice_server.cluster.commands, voice_server.cluster_node, "
        "voice_server.cluster.live_relay, voice_server.cluster.live_events, "
        "voice_server.cluster.event_queue, "
        "voice_server.app, voice_server.cli; "
        "sys.exit(3 if 'redis' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
