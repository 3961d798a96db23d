"""Resource series over a run and their trends, so a leak shows (pure module: no I/O).

The coordinator appends one sample per interval (seconds since the window started, and named
values: server RSS, CPU cores over the interval, open fds, threads, asyncio tasks, sessions,
the generator's RSS …). :func:`summarize` gives for each series its first, last, min and max
value and the least-squares slope per hour. A slope is reported once a series has three
points; over a short run it is dominated by noise, over an hour (``--duration 3600``) a
steady RSS or task growth stands out from the sawtooth of the allocator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["SoakSeries", "slope", "summarize"]


def slope(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Least-squares slope of ``ys`` over ``xs`` (None with fewer than 3 points or no spread)."""
    n = len(xs)
    if n != len(ys) or n < 3:
        return None
    mx = math.fsum(xs) / n
    my = math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    if sxx <= 0:
        return None
    return math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


class SoakSeries:
    """Named series sampled at the same instants."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.values: dict[str, list[float | None]] = {}

    def add(self, t: float, sample: dict[str, float | None]) -> None:
        k = len(self.t)
        self.t.append(t)
        for name, value in sample.items():
            self.values.setdefault(name, [None] * k).append(value)
        for series in self.values.values():
            if len(series) < k + 1:
                series.append(None)

    def __len__(self) -> int:
        return len(self.t)


def summarize(series: SoakSeries, *, keep_points: int = 120) -> dict[str, Any]:
    """``{"samples", "seconds", "series": {name: {first, last, min, max, slope_per_hour}},
    "points": {"t": [...], name: [...]}}`` (points thinned to at most ``keep_points``)."""
    out: dict[str, Any] = {
        "samples": len(series),
        "seconds": round(series.t[-1] - series.t[0], 1) if series.t else 0.0,
    }
    stats: dict[str, dict[str, float | None]] = {}
    for name, values in series.values.items():
        pairs = [(t, v) for t, v in zip(series.t, values, strict=True) if v is not None]
        if not pairs:
            continue
        ys = [v for _, v in pairs]
        s = slope([t for t, _ in pairs], ys)
        stats[name] = {
            "first": ys[0],
            "last": ys[-1],
            "min": min(ys),
            "max": max(ys),
            "slope_per_hour": None if s is None else round(s * 3600.0, 4),
        }
    out["series"] = stats
    step = max(1, math.ceil(len(series) / keep_points))
    points: dict[str, list[float | None]] = {"t": [round(t, 1) for t in series.t[::step]]}
    for name, values in series.values.items():
        points[name] = values[::step]
    out["points"] = points
    return out
