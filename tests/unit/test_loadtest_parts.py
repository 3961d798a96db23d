"""The load tester's pure parts: the plan, trends, the report's figures and validity."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from voice_server.histogram import LatencyHistogram
from voice_server.loadtest.plan import LoadPlan
from voice_server.loadtest.report import ProcFigures, RunData, build_report
from voice_server.loadtest.soak import SoakSeries, slope, summarize
from voice_server.loadtest.target import child_pids, listener_pid


def test_talkers_join_first_then_listeners_round_robin_over_channels() -> None:
    plan = LoadPlan(channels=3, per_channel=4, talkers=2, duration=1, join_rate=10, workers=2)
    specs = plan.specs()
    assert len(specs) == plan.total == 12
    assert [s.talker for s in specs] == [True] * 6 + [False] * 6
    assert [s.channel_index for s in specs[:6]] == [0, 1, 2, 0, 1, 2]
    assert [s.join_at for s in specs[:3]] == [0.0, 0.1, 0.2]
    assert plan.join_seconds == pytest.approx(1.1)
    assert [s.worker for s in specs] == [0, 1] * 6
    per_channel = {c: sum(1 for s in specs if s.channel == c) for c in plan.channel_names()}
    assert set(per_channel.values()) == {4}
    assert len({s.sub for s in specs}) == len({s.device_id for s in specs}) == 12
    assert plan.expected_streams(talker=True) == 1 and plan.expected_streams(talker=False) == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"talkers": 5},
        {"talkers": -1},
        {"duration": 0},
        {"join_rate": 0},
        {"workers": 0},
        {"channels": 0},
        {"channels": 1000, "per_channel": 1000},
    ],
)
def test_impossible_plans_are_refused(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"channels": 2, "per_channel": 4, "talkers": 1, "duration": 1.0}
    with pytest.raises(ValueError):
        LoadPlan(**{**base, **kwargs})


def test_slope_is_the_least_squares_trend() -> None:
    assert slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert slope([0, 1], [0, 1]) is None  # too few points
    assert slope([1, 1, 1], [0, 1, 2]) is None  # no spread in time


def test_soak_summary_reports_per_hour_slopes_and_tolerates_gaps() -> None:
    series = SoakSeries()
    for k in range(10):
        series.add(k * 60.0, {"rss": 100.0 + k, "fds": 30.0 if k != 4 else None})
    series.add(600.0, {"rss": 110.0})
    out = summarize(series, keep_points=5)
    assert out["samples"] == 11 and out["seconds"] == 600.0
    assert out["series"]["rss"]["slope_per_hour"] == pytest.approx(60.0)
    assert out["series"]["fds"]["slope_per_hour"] == 0.0
    assert out["series"]["rss"]["first"] == 100.0 and out["series"]["rss"]["last"] == 110.0
    assert len(out["points"]["t"]) <= 6 and len(out["points"]["rss"]) == len(out["points"]["t"])


def _histogram_samples(name: str, values_us: list[int]) -> dict[Any, float]:
    h = LatencyHistogram()
    for v in values_us:
        h.observe_us(v)
    out: dict[Any, float] = {}
    for suffix, labels, value in h.family(name, "").samples:
        out[(name + suffix, tuple(sorted(labels.items())))] = value
    return out


def _person(index: int, channel: str, talker: bool, **kw: Any) -> dict[str, Any]:
    base = {
        "index": index,
        "channel": channel,
        "talker": talker,
        "joined": True,
        "error": None,
        "ws_open_ns": index * 10**9,
        "offer_ns": index * 10**9 + 5 * 10**6,
        "media_ns": index * 10**9 + 50 * 10**6,
        "first_audio_ns": index * 10**9 + 80 * 10**6,
        "window_streams": 0 if talker else 1,
    }
    return {**base, **kw}


def _data(people: list[dict[str, Any]], **kw: Any) -> RunData:
    plan = LoadPlan(channels=1, per_channel=len(people), talkers=1, duration=10.0)
    copies = 1000 * (len(people) - 1)
    m0 = {("voice_media_packets_out_total", ()): 0.0, ("voice_media_packets_routed_total", ()): 0.0}
    m1 = {
        ("voice_media_packets_out_total", ()): float(copies - kw.pop("missing", 0)),
        ("voice_media_packets_routed_total", ()): 1000.0,
        **_histogram_samples("voice_media_forward_seconds", [100] * 98 + [4000, 9000]),
    }
    m0.update(_histogram_samples("voice_media_forward_seconds", []))
    totals = {"sent": 1000, "late_sends": 0, "received": 2000, "lost": 0, "expected": 2000}
    snap = {
        "totals": totals,
        "latency": LatencyHistogram().as_dict(),
        "lateness": LatencyHistogram().as_dict(),
        "jitter_ms": [0.5, 1.0],
        "participants": people,
    }
    defaults: dict[str, Any] = {
        "plan": plan,
        "window_seconds": 10.0,
        "m0": m0,
        "m1": m1,
        "server": ProcFigures(cpu_seconds=5.0, cores=0.5, rss_mb=120.0, pids=[1]),
        "sidecar": None,
        "generator": ProcFigures(cpu_seconds=3.0, cores=0.3, rss_mb=90.0),
        "machine_cores": 0.9,
        "softirq_cores": 0.0,
        "cpus": 2,
        "server_socket_drops": 0,
        "generator_socket_drops": 0,
        "marks": [dict.fromkeys(totals, 0)],
        "snapshots": [snap],
    }
    return RunData(**{**defaults, **kw})


def test_report_figures_come_from_the_server_counters_and_the_generator() -> None:
    people = [_person(0, "c", True), _person(1, "c", False), _person(2, "c", False)]
    r = build_report(_data(people))
    assert r["participants_joined"] == r["participants_heard"] == 3
    assert r["server"]["loss"] == 0.0 and r["server"]["copies_per_second"] == 200.0
    assert r["server"]["cpu_us_per_copy"] == pytest.approx(2500.0)
    assert r["server"]["added_latency_ms"]["count"] == 100
    assert 4.0 <= r["server"]["added_latency_ms"]["p99"] <= 4.4  # 99th of 100 values: 4 ms
    # the talker joined first: only the two listeners joined a channel with someone talking
    assert r["join_ms"]["count"] == 2 and r["join_ms"]["p50"] == pytest.approx(80.0)
    assert r["generator"]["loss"] == 0.0 and r["machine"]["other_cores"] == pytest.approx(0.1)
    assert r["valid"] and r["valid_reasons"] == []
    assert r["meets_targets"]["loss"] and r["meets_targets"]["cpu_cores"]


def test_missing_copies_are_server_loss_and_generator_trouble_voids_the_run() -> None:
    people = [_person(0, "c", True), _person(1, "c", False, joined=False, error="timeout")]
    people[1]["window_streams"] = 0
    data = _data(people, missing=10, generator_socket_drops=3, machine_cores=1.5)
    data.snapshots[0]["totals"]["late_sends"] = 50
    r = build_report(data)
    assert r["server"]["loss"] == pytest.approx(0.01)
    assert r["participants_joined"] == 1 and r["participants_heard"] == 1
    assert r["generator"]["join_errors"] == {"timeout": 1}
    assert not r["valid"]
    text = " | ".join(r["valid_reasons"])
    assert "late" in text and "dropped 3" in text and "other processes used 0.70" in text
    assert r["meets_targets"]["all_joined"] is False and r["meets_targets"]["loss"] is False


def test_the_listening_process_and_children_are_found_in_proc() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert listener_pid(s.getsockname()[1]) == os.getpid()
    assert os.getpid() in child_pids(os.getppid())


def test_talkers_pause_between_bursts_each_at_its_own_time() -> None:
    plan = LoadPlan(
        channels=1, per_channel=3, talkers=3, duration=1, talk_seconds=4, pause_seconds=1
    )
    for index in range(3):
        talking = [plan.talking_at(index, k * 0.1) for k in range(100)]  # 10 s
        assert sum(talking) == 80  # 4 s of every 5
    assert len({tuple(plan.talking_at(i, k * 0.1) for k in range(50)) for i in range(3)}) == 3
    always = LoadPlan(channels=1, per_channel=2, talkers=1, duration=1)
    assert all(always.talking_at(0, k * 0.7) for k in range(100))


def test_repeated_runs_report_medians_of_the_valid_ones_only() -> None:
    from voice_server.loadtest.repeat import combine, dotted
    from voice_server.loadtest.summary import format_medians

    def run(cores: float, valid: bool) -> dict[str, Any]:
        return {
            "valid": valid,
            "valid_reasons": [] if valid else ["other processes used 1.00 cores"],
            "server": {"cpu_cores": cores, "added_latency_ms": {"p99": cores * 4}},
        }

    doc = combine([run(0.8, True), run(0.9, True), run(5.0, False), run(1.0, True)])
    assert doc["runs"] == 4 and doc["valid_runs"] == 3
    assert doc["median"]["server.cpu_cores"] == 0.9
    assert doc["range"]["server.added_latency_ms.p99"] == [3.2, 4.0]
    assert doc["median"]["join_ms.p95"] is None
    assert dotted({"a": {"b": 1}}, "a.b") == 1 and dotted({"a": 1}, "a.b") is None
    assert "not valid: other processes" in format_medians(doc)


def test_garbage_collections_are_timed_and_exposed() -> None:
    import gc

    from voice_server.metrics import MetricsRegistry
    from voice_server.process_metrics import GcMonitor

    monitor = GcMonitor().install()
    try:
        monitor.install()  # idempotent
        gc.collect()
        assert monitor.collections[2] >= 1 and monitor.pauses.count >= 1
        registry = MetricsRegistry()
        registry.register(monitor.families)
        text = registry.render()
        assert 'voice_gc_collections_total{generation="2"}' in text
        assert "voice_gc_pause_seconds_count" in text
    finally:
        monitor.uninstall()
    assert monitor._callback not in gc.callbacks
