"""The capacity search of ``bench workers`` (pure parts): cores, what *held* means, the steps."""

from __future__ import annotations

from typing import Any

import pytest

from voice_server.bench.capacity import CapacityPlan, Search, judge, split_cores


def _result(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "valid": True,
        "valid_reasons": [],
        "participants_planned": 200,
        "participants_joined": 200,
        "participants_heard": 200,
        "server": {"loss": 0.0, "added_latency_ms": {"p99": 3.2}},
    }
    r.update(over)
    return r


def test_split_cores_pins_the_server_apart_from_a_fixed_generator() -> None:
    assert split_cores([0, 1, 2, 3, 4, 5], 1) == ([0], [2, 3, 4, 5])
    assert split_cores([5, 4, 3, 2, 1, 0], 2) == ([0, 1], [2, 3, 4, 5])
    assert split_cores([2, 7, 9, 11], 2) == ([2, 7], [9, 11])


def test_split_cores_refuses_too_few_unless_forced() -> None:
    with pytest.raises(ValueError, match="needs 4"):
        split_cores([0, 1], 2)
    assert split_cores([0, 1], 2, force=True) == (None, None)


def test_judge() -> None:
    assert judge(_result()) == (True, "held")
    ok, why = judge(_result(server={"loss": 0.001, "added_latency_ms": {"p99": 1.0}}))
    assert not ok and "loss" in why
    ok, why = judge(_result(server={"loss": 0.0, "added_latency_ms": {"p99": 5.01}}))
    assert not ok and "p99" in why
    assert judge(_result(participants_heard=199))[0] is False
    assert judge(_result(participants_joined=150))[0] is False
    ok, why = judge(_result(valid=False, valid_reasons=["generator pacing lag p99 30 ms"]))
    assert not ok and why.startswith("invalid: generator pacing lag")
    assert judge(_result(server={"loss": None, "added_latency_ms": {}}))[0] is False


def _walk(plan: CapacityPlan, capacity: int) -> tuple[list[int], int]:
    """The sizes a search tries against a server that holds up to ``capacity``."""
    search = Search(plan)
    tried = []
    while (n := search.next_size()) is not None:
        tried.append(n)
        search.record(n, n <= capacity)
    return tried, search.capacity


def test_search_steps_up_then_once_between() -> None:
    plan = CapacityPlan(start=200, step=200, limit=4000)
    assert _walk(plan, 650) == ([200, 400, 600, 800, 700], 600)
    assert _walk(plan, 720) == ([200, 400, 600, 800, 700], 700)
    assert _walk(plan, 100) == ([200, 100], 100)
    assert _walk(plan, 50) == ([200, 100], 0)


def test_search_stops_at_the_limit_and_rounds_to_whole_channels() -> None:
    assert _walk(CapacityPlan(start=200, step=200, limit=600), 10_000) == ([200, 400, 600], 600)
    tried, _ = _walk(CapacityPlan(per_channel=30, start=100, step=100, limit=1000), 250)
    assert all(n % 30 == 0 for n in tried)


def test_search_stopped_by_the_generator_tries_nothing_more() -> None:
    search = Search(CapacityPlan())
    assert search.next_size() == 200
    search.stopped = "invalid: generator pacing lag"
    assert search.next_size() is None and search.capacity == 0


def test_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        CapacityPlan(per_channel=1)
    with pytest.raises(ValueError):
        CapacityPlan(start=10, per_channel=20)
    with pytest.raises(ValueError):
        CapacityPlan(start=400, limit=200)
