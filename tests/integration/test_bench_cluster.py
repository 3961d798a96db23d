"""``bench cluster --quick`` end to end: its own Redis and PostgreSQL, four real nodes, simulated
participants; a node killed and one hung, Redis stopped. Structure and sanity only, never speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_server.bench.pgserver import find_bindir
from voice_server.bench.redisserver import find_redis_server
from voice_server.cli import main

pytestmark = pytest.mark.integration


def test_cluster_bench_quick_reports_every_phase(tmp_path: Path) -> None:
    if find_redis_server() is None or find_bindir() is None:
        pytest.skip("redis-server or PostgreSQL not installed (scripts/install-test-deps.sh)")
    pytest.importorskip("redis")
    pytest.importorskip("psycopg")
    out = tmp_path / "cluster.json"
    assert main(["bench", "cluster", "--quick", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    for phase in ("one_node", "span"):
        assert r[phase]["copies"] > 0 and r[phase]["cpu_us_per_copy"] > 0, r[phase]
    assert r["span"]["relayed"] > 0 and r["one_node"]["relayed"] == 0
    assert r["cpu_ratio"] > 0 and r["one_node"]["idle_node_cores"] >= 0
    assert "us_per_relayed" in r["relay_cpu"]
    hop = r["hop"]["added_ms"]
    assert hop["count"] > 0 and 0 <= hop["p50"] <= hop["p99"]
    for key, signal in (("kill", "SIGKILL"), ("hang", "SIGSTOP")):
        fo = r["failover"][key]
        assert fo["signal"] == signal and fo["clients"] > 0
        assert fo["heard_again_s"]["never"] == 0, fo  # every client heard audio again
        assert r["failover"][f"{key}_s"] == fo["s"] > 0
        assert fo["landed_on"] and fo["node"] not in fo["landed_on"]
    assert "headset" in r["failover"]["client_rule"]
    outage = r["redis_outage"]
    assert outage["received_during"] > 0
    assert 0 < outage["max_gap_while_down_ms"] <= outage["max_gap_ms"]
    assert set(outage["gaps"]) == {"before_join", "join_tried", "rest_of_outage", "after_return"}
    assert outage["rejoin_s"] is not None and outage["rejoin_s"] >= 0
    assert outage["join_during"]["refused_in_s"] is not None  # refused, not accepted
    assert set(r["meets_targets"]) == set(r["targets"])
    assert len(r["machine"]["loadavg_before"]) == 3 and r["machine"]["cpus"] >= 1
