"""Behaviour of the benchmark statistics helpers and the hot-path latency histogram."""

from __future__ import annotations

import json
import random
import statistics
import timeit
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_server.bench.stats import (
    DEFAULT_BOUNDS_US,
    LatencyHistogram,
    make_bounds_us,
    percentile,
    percentiles,
    summarize,
)


def test_linear_percentile_matches_numpy_default_on_a_small_example() -> None:
    xs = [1.0, 2.0, 3.0, 4.0]
    assert percentile(xs, 50) == 2.5
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 4.0
    assert percentile(xs, 25) == pytest.approx(1.75)


def test_nearest_rank_percentile_returns_an_observed_value() -> None:
    xs = [15, 20, 35, 40, 50]
    assert percentile(xs, 30, method="nearest") == 20
    assert percentile(xs, 40, method="nearest") == 20
    assert percentile(xs, 50, method="nearest") == 35
    assert percentile(xs, 100, method="nearest") == 50
    assert percentile(xs, 0, method="nearest") == 15


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=200))
def test_linear_percentile_agrees_with_statistics_quantiles(xs: list[float]) -> None:
    cuts = statistics.quantiles(xs, n=100, method="inclusive")
    for p in (1, 25, 50, 95, 99):
        assert percentile(xs, p) == pytest.approx(cuts[p - 1], rel=1e-9, abs=1e-6)


def test_percentile_rejects_empty_input_and_out_of_range_p() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        percentiles([1.0], (50, -1))


def test_percentiles_are_keyed_by_p() -> None:
    out = percentiles(range(101), (50, 99, 99.9))
    assert out == {"p50": 50.0, "p99": 99.0, "p99.9": pytest.approx(99.9)}


def test_summary_scales_units_and_survives_empty_input() -> None:
    s = summarize([0.001, 0.002, 0.003], scale=1e3)
    assert s["count"] == 3
    assert s["mean"] == pytest.approx(2.0)
    assert s["min"] == pytest.approx(1.0)
    assert s["max"] == pytest.approx(3.0)
    assert s["p50"] == pytest.approx(2.0)
    empty = summarize([])
    assert empty["count"] == 0
    assert empty["p99"] is None
    json.dumps(empty)


def test_default_bounds_cover_zero_to_fifty_ms_in_fine_steps() -> None:
    b = DEFAULT_BOUNDS_US
    assert b[0] == 0
    assert b[-1] == 50_000
    assert list(b[:17]) == list(range(17))
    assert all(y > x for x, y in pairwise(b))
    # relative step ~9 % past the linear part (integer rounding makes the first few coarser)
    assert max((y - x) / x for x, y in pairwise(b[16:])) < 0.125
    assert len(b) < 150


def test_make_bounds_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        make_bounds_us(max_us=10, linear_until_us=16)


def test_values_land_in_the_bucket_whose_upper_bound_covers_them() -> None:
    h = LatencyHistogram([0, 10, 100])
    for v in (-5, 0, 1, 10, 11, 100, 101, 10**9):
        h.observe_us(v)
    assert h.counts == [2, 2, 2, 2]
    assert h.overflow == 2
    assert h.count == 8
    assert h.max_us == 10**9


def test_histogram_percentiles_are_close_to_exact_ones() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(4.0, 1.0)) for _ in range(20_000)]
    h = LatencyHistogram()
    for v in values:
        h.observe_us(v)
    for p in (50, 95, 99):
        exact = percentile(values, p, method="nearest")
        assert h.percentile(p) == pytest.approx(exact, rel=0.10, abs=1.0)
    assert h.percentile(100) == max(values)
    assert h.mean_us() == pytest.approx(statistics.fmean(values))


def test_histogram_is_exact_in_the_linear_range() -> None:
    h = LatencyHistogram()
    for v in [3] * 50 + [7] * 50:
        h.observe_us(v)
    assert h.percentile(50) == pytest.approx(3.0)
    assert h.percentile(51) <= 7.0
    assert h.percentile(99) == pytest.approx(7.0)


def test_histogram_percentile_never_exceeds_the_observed_maximum() -> None:
    h = LatencyHistogram()
    h.observe_us(20_001)
    assert h.percentile(99) == 20_001
    h2 = LatencyHistogram([0, 10])
    h2.observe_us(1_000_000)
    assert h2.percentile(50) == 1_000_000


def test_empty_histogram_raises_but_summarises_to_none() -> None:
    h = LatencyHistogram()
    with pytest.raises(ValueError):
        h.percentile(50)
    with pytest.raises(ValueError):
        h.mean_us()
    assert h.summary_ms()["p99"] is None
    json.dumps(h.as_dict())


def test_merge_adds_counts_and_keeps_the_larger_max() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for v in range(100):
        a.observe_us(v)
    for v in range(1000, 1100):
        b.observe_us(v)
    a.merge(b)
    assert a.count == 200
    assert a.max_us == 1099
    assert a.sum_us == sum(range(100)) + sum(range(1000, 1100))
    assert b.count == 100


def test_merge_refuses_different_bounds() -> None:
    with pytest.raises(ValueError):
        LatencyHistogram().merge(LatencyHistogram([0, 1, 2]))


def test_reset_zeroes_in_place_and_copy_is_independent() -> None:
    h = LatencyHistogram()
    h.observe_us(5)
    c = h.copy()
    h.reset()
    assert h.count == 0
    assert h.max_us == 0
    assert c.count == 1


def test_summary_ms_converts_microseconds() -> None:
    h = LatencyHistogram()
    for _ in range(10):
        h.observe_us(2_000)
    s = h.summary_ms()
    assert s["count"] == 10
    assert s["max"] == 2.0
    assert s["p50"] == pytest.approx(2.0, rel=0.1)


def test_as_dict_round_trips_through_json() -> None:
    for bounds in (None, [0, 5, 50, 500]):
        h = LatencyHistogram(bounds)
        for v in (0, 3, 40, 400, 4000, 40_000, 400_000):
            h.observe_us(v)
        back = LatencyHistogram.from_dict(json.loads(json.dumps(h.as_dict())))
        assert back.counts == h.counts
        assert back.bounds_us == h.bounds_us
        assert back.sum_us == h.sum_us
        assert back.max_us == h.max_us


def test_from_dict_rejects_unknown_bounds() -> None:
    d = LatencyHistogram().as_dict()
    d["buckets"] = [[18, 1]]  # 18 is not a default bound
    with pytest.raises(ValueError):
        LatencyHistogram.from_dict(d)


def test_rejects_unsorted_bounds() -> None:
    with pytest.raises(ValueError):
        LatencyHistogram([0, 5, 5])
    with pytest.raises(ValueError):
        LatencyHistogram([])


def test_observe_is_cheap_enough_for_the_hot_path() -> None:
    h = LatencyHistogram()
    observe = h.observe_us
    values = [random.randint(1, 5000) for _ in range(1000)]

    def run() -> None:
        for v in values:
            observe(v)

    per_call = min(timeit.repeat(run, number=20, repeat=5)) / (20 * len(values))
    # ~0.16 µs here; generous ceiling because the machine is shared.
    assert per_call < 1e-6


def test_observe_many_counts_a_batch_like_single_observations() -> None:
    one, many = LatencyHistogram(), LatencyHistogram()
    for _ in range(7):
        one.observe_us(123)
    many.observe_us_n(123, 7)
    assert one.counts == many.counts and one.sum_us == many.sum_us and one.max_us == many.max_us
