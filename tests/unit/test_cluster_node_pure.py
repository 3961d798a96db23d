"""The pure parts of a node of a cluster: the Redis link state, where a drained node sends its
clients, the intervals derived from the two settings, and the settings' checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_server.cluster.drain import migrate_targets
from voice_server.cluster.link import LinkState
from voice_server.cluster.nodes import NodeInfo
from voice_server.cluster.timing import Timing
from voice_server.config import ConfigError, load_config

PG = "postgresql://voice@db.example/voice"


def test_the_link_is_down_until_a_call_works_and_counts_its_falls() -> None:
    link = LinkState()
    assert (link.up, link.state) == (False, "down")
    assert not link.failed(1.0)  # already down: no transition
    assert link.ok(2.0) and link.state == "up" and link.changed_at == 2.0
    assert not link.ok(3.0)
    assert link.failed(4.0) and link.downs == 1 and link.changed_at == 4.0
    assert not link.failed(5.0)
    assert (link.failures, link.successes, link.downs) == (3, 2, 1)


def test_a_drained_node_sends_clients_to_the_other_ready_nodes_least_loaded_first() -> None:
    nodes = [
        NodeInfo("a", "i", 10, "http://a:8000", 100),
        NodeInfo("b", "i", 5, "http://b:8000", 100),
        NodeInfo("c", "i", 1, "http://c:8000", 100, state="draining"),
        NodeInfo("d", "i", 5, "http://d:8000", 100),
        NodeInfo("e", "i", 0, "", 100),  # no base URL: nowhere to send anyone
        NodeInfo("f", "i", 0, "http://f:8000", 100, state="starting"),
    ]
    assert migrate_targets(nodes, "a") == ["http://b:8000", "http://d:8000"]
    assert migrate_targets(nodes[:1], "a") == []


def test_every_interval_follows_from_the_heartbeat_and_the_node_ttl() -> None:
    t = Timing.derived(1.0, 5.0)  # the defaults of serve: as the layer's own, presence 15 s
    assert t == Timing(session_ttl_s=15.0)
    fast = Timing.derived(0.2, 1.5)
    assert (fast.lease_s, fast.reassert_s, fast.channel_entry_ttl_s, fast.session_ttl_s) == (
        1.5, 0.4, pytest.approx(1.2), 4.5,
    )  # fmt: skip


def cfg(tmp_path: Path, **values: object) -> object:
    return load_config(None, data_dir=tmp_path, **values)


def test_a_cluster_node_needs_an_id_and_postgresql(tmp_path: Path) -> None:
    node = cfg(tmp_path, redis_url="redis://127.0.0.1:6379/0", node_id="n1", database_url=PG)
    assert node.node_id == "n1"  # type: ignore[attr-defined]
    assert cfg(tmp_path).redis_url is None  # type: ignore[attr-defined]  # one box: no Redis
    for values, why in (
        ({"redis_url": "redis://h:6379/0", "database_url": PG}, "needs node_id"),
        ({"redis_url": "redis://h:6379/0", "node_id": "n1"}, "postgresql"),
        ({"redis_url": "http://h:6379", "node_id": "n1", "database_url": PG}, "redis://"),
        ({"node_id": "-bad"}, "node id"),
        ({"node_id": "a b"}, "node id"),
        ({"cluster_prefix": "a}b"}, "prefix"),
        ({"cluster_heartbeat_seconds": 2, "cluster_node_ttl_seconds": 3}, "two heartbeats"),
    ):
        with pytest.raises(ConfigError, match=why):
            cfg(tmp_path, **values)


def test_the_base_url_a_node_reports(tmp_path: Path) -> None:
    assert cfg(tmp_path, port=8123).base_url == "http://127.0.0.1:8123"  # type: ignore[attr-defined]
    public = cfg(tmp_path, host="0.0.0.0", public_url="https://voice.example/")
    assert public.base_url == "https://voice.example"  # type: ignore[attr-defined]
