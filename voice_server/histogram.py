"""A fixed-bucket latency histogram of integer microseconds, cheap enough for the hot path.

``observe_us`` is one ``bisect`` over a precomputed tuple of bounds, one list increment, one add
and one compare (~0.2 µs). Percentiles are estimated from the buckets: the bucket holding the
nearest-rank sample, interpolated inside it (error bounded by the bucket width: ≤ 1 µs up to
16 µs, then about 9 % of the value), never above the largest value observed.
Used by the media plane (forwarding time per copy) and the benchmarks.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from itertools import pairwise
from typing import Any

from voice_server.metrics import Family

__all__ = ["DEFAULT_BOUNDS_US", "LatencyHistogram", "make_bounds_us"]


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {p}")


def make_bounds_us(
    max_us: int = 50_000, linear_until_us: int = 16, steps_per_doubling: int = 8
) -> tuple[int, ...]:
    """Bucket upper bounds in µs: ``0, 1, 2 … linear_until_us``, then geometric steps of
    ``2 ** (1 / steps_per_doubling)`` (rounded to distinct integers) up to ``max_us``."""
    if max_us <= linear_until_us or linear_until_us < 1 or steps_per_doubling < 1:
        raise ValueError("need 1 <= linear_until_us < max_us and steps_per_doubling >= 1")
    bounds = list(range(linear_until_us + 1))
    factor = 2.0 ** (1.0 / steps_per_doubling)
    x = float(linear_until_us)
    while bounds[-1] < max_us:
        x *= factor
        b = min(max_us, round(x))
        if b > bounds[-1]:
            bounds.append(b)
    return tuple(bounds)


DEFAULT_BOUNDS_US: tuple[int, ...] = make_bounds_us()
"""0–16 µs in 1 µs steps, then ~9 % steps to 50 ms (110 bounds); larger values overflow."""


class LatencyHistogram:
    """Integer-microsecond histogram with fixed buckets, cheap enough for a per-packet hot path.

    Bucket ``i`` counts values ``v`` with ``bounds[i-1] < v <= bounds[i]`` (bucket 0: ``v <= 0``,
    so negative values from clock steps land there); the last bucket counts ``v > bounds[-1]``.
    Counts are a plain ``list[int]``; ``sum`` and ``max`` are tracked exactly.
    """

    __slots__ = ("_bounds", "_counts", "_max", "_sum")

    def __init__(self, bounds_us: Sequence[int] | None = None) -> None:
        bounds = DEFAULT_BOUNDS_US if bounds_us is None else tuple(int(b) for b in bounds_us)
        if not bounds or any(b2 <= b1 for b1, b2 in pairwise(bounds)):
            raise ValueError("bucket bounds must be non-empty and strictly increasing")
        self._bounds: tuple[int, ...] = bounds
        self._counts: list[int] = [0] * (len(bounds) + 1)
        self._sum = 0
        self._max = 0

    def observe_us(self, us: int) -> None:
        """Count one value in microseconds (hot path: no allocation, ~0.2 µs)."""
        self._counts[bisect_left(self._bounds, us)] += 1
        self._sum += us
        if us > self._max:
            self._max = us

    def observe_us_n(self, us: int, n: int) -> None:
        """Count ``n`` values of ``us`` microseconds at once (one bisect for a whole batch)."""
        self._counts[bisect_left(self._bounds, us)] += n
        self._sum += us * n
        if us > self._max:
            self._max = us

    @property
    def bounds_us(self) -> tuple[int, ...]:
        return self._bounds

    @property
    def counts(self) -> list[int]:
        """A copy of the bucket counts (``len(bounds_us) + 1`` entries, overflow last)."""
        return list(self._counts)

    @property
    def count(self) -> int:
        return sum(self._counts)

    @property
    def sum_us(self) -> int:
        return self._sum

    @property
    def max_us(self) -> int:
        return self._max

    @property
    def overflow(self) -> int:
        return self._counts[-1]

    def __len__(self) -> int:
        return self.count

    def mean_us(self) -> float:
        n = self.count
        if n == 0:
            raise ValueError("mean of an empty histogram")
        return self._sum / n

    def percentile(self, p: float) -> float:
        """Estimated ``p``-th percentile in µs (nearest rank, interpolated inside its bucket)."""
        _check_p(p)
        n = self.count
        if n == 0:
            raise ValueError("percentile of an empty histogram")
        rank = max(1, math.ceil(p / 100.0 * n))
        cum = 0
        for i, c in enumerate(self._counts):
            if c and cum + c >= rank:
                if i == 0:
                    return float(min(self._bounds[0], self._max))
                if i == len(self._bounds):
                    return float(self._max)
                # Values are integers, so bucket (lo, hi] holds lo+1 … hi: place the k-th of its
                # c samples at first + (hi - first) * k / c (exact for 1 µs wide buckets).
                first = self._bounds[i - 1] + 1
                hi = self._bounds[i]
                est = first + (hi - first) * (rank - cum) / c
                return float(min(est, self._max))
            cum += c
        return float(self._max)  # unreachable: rank <= n

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s counts into this histogram (bounds must be identical)."""
        if other._bounds != self._bounds:
            raise ValueError("cannot merge histograms with different bounds")
        counts = self._counts
        for i, c in enumerate(other._counts):
            counts[i] += c
        self._sum += other._sum
        self._max = max(self._max, other._max)

    def copy(self) -> LatencyHistogram:
        h = LatencyHistogram(self._bounds)
        h.merge(self)
        return h

    def reset(self) -> None:
        """Zero every count in place (the hot path keeps its reference to the same object)."""
        for i in range(len(self._counts)):
            self._counts[i] = 0
        self._sum = 0
        self._max = 0

    def summary_ms(self, ps: Sequence[float] = (50, 95, 99)) -> dict[str, float | int | None]:
        """``count``, ``mean``, ``max`` and percentiles in milliseconds (``None`` when empty)."""
        n = self.count
        out: dict[str, float | int | None] = {"count": n}
        out["mean"] = self._sum / n / 1e3 if n else None
        out["max"] = self._max / 1e3 if n else None
        for p in ps:
            out[f"p{p:g}"] = self.percentile(p) / 1e3 if n else None
        return out

    def family(self, name: str, help_text: str, stride: int = 1) -> Family:
        """Prometheus histogram in seconds (cumulative ``_bucket{le=…}``, ``_sum``, ``_count``).

        Exposes every ``stride``-th bound (default 1: every bound, about 110 lines with the
        default bounds, so a scraper can rebuild the histogram exactly, as
        ``bench.prom.histogram_delta`` does); ``+Inf`` is the total."""
        fam = Family(name, "histogram", help_text)
        cum = 0
        counts = self._counts
        for i, bound in enumerate(self._bounds):
            cum += counts[i]
            if i % stride == stride - 1 or i == len(self._bounds) - 1:
                fam.add(cum, "_bucket", le=f"{bound / 1e6:g}")
        total = cum + counts[-1]
        fam.add(total, "_bucket", le="+Inf")
        fam.add(self._sum / 1e6, "_sum")
        fam.add(total, "_count")
        return fam

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: summary in µs plus the non-empty buckets as ``[upper_bound_us, count]``
        (``None`` as the bound of the overflow bucket). ``from_dict`` reverses it."""
        n = self.count
        buckets: list[list[int | None]] = []
        for i, c in enumerate(self._counts):
            if c:
                buckets.append([self._bounds[i] if i < len(self._bounds) else None, c])
        return {
            "count": n,
            "sum_us": self._sum,
            "max_us": self._max,
            "mean_us": self._sum / n if n else None,
            "p50_us": self.percentile(50) if n else None,
            "p95_us": self.percentile(95) if n else None,
            "p99_us": self.percentile(99) if n else None,
            "bounds_us": list(self._bounds) if self._bounds != DEFAULT_BOUNDS_US else None,
            "buckets": buckets,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        """Rebuild a histogram from ``as_dict()`` output (e.g. sent by another process)."""
        bounds = data.get("bounds_us")
        h = cls(bounds)
        index = {b: i for i, b in enumerate(h._bounds)}
        for le, c in data["buckets"]:
            i = len(h._bounds) if le is None else index.get(int(le))
            if i is None:
                raise ValueError(f"bucket bound {le} is not one of the histogram's bounds")
            h._counts[i] += int(c)
        h._sum = int(data["sum_us"])
        h._max = int(data["max_us"])
        return h

    def __repr__(self) -> str:
        return f"LatencyHistogram(count={self.count}, max_us={self._max})"
