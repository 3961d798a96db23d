"""Read Prometheus text exposition (as ``/metrics`` renders it) back into numbers.

Only what the benchmarks need: ``name{label="value",...} number`` lines (comments skipped),
looked up by name and labels, and a histogram rebuilt from the difference of two scrapes of its
cumulative ``_bucket{le=...}`` samples into a :class:`~voice_server.histogram.LatencyHistogram`
(the server exposes every bucket bound, so the rebuilt histogram has the server's resolution).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from voice_server.histogram import LatencyHistogram

__all__ = ["Samples", "histogram_delta", "parse", "value"]

Key = tuple[str, tuple[tuple[str, str], ...]]
Samples = Mapping[Key, float]

_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[Key, float]:
    """Every sample of a Prometheus text exposition, keyed by (name, sorted labels)."""
    out: dict[Key, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if m is None:
            continue
        name, labels, raw = m.groups()
        pairs = tuple(sorted(_LABEL.findall(labels or "")))
        try:
            out[(name, pairs)] = float(raw)
        except ValueError:
            continue
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _buckets(samples: Samples, name: str) -> dict[float, float]:
    """Cumulative counts by upper bound in seconds (``+Inf`` as ``math.inf``)."""
    out: dict[float, float] = {}
    for (sample, labels), count in samples.items():
        if sample != f"{name}_bucket":
            continue
        le = dict(labels).get("le")
        if le is not None:
            out[math.inf if le == "+Inf" else float(le)] = count
    return out


def histogram_delta(before: Samples, after: Samples, name: str) -> LatencyHistogram:
    """The histogram of the values observed between two scrapes (bounds in whole µs).

    Its ``max_us`` is the upper bound of the highest non-empty bucket (the exact maximum is
    not exposed), so percentiles are interpolated inside buckets as for the server's own.
    """
    b0, b1 = _buckets(before, name), _buckets(after, name)
    finite = sorted(le for le in b1 if le != math.inf)
    if not finite:
        raise ValueError(f"no buckets of {name} in the scrape")
    bounds = [round(le * 1e6) for le in finite]
    buckets: list[list[int | None]] = []
    previous = 0.0
    top = 0
    for le, bound in zip(finite, bounds, strict=True):
        cum = b1[le] - b0.get(le, 0.0)
        count = round(cum - previous)
        previous = cum
        if count > 0:
            buckets.append([bound, count])
            top = bound
    total = b1.get(math.inf, previous) - b0.get(math.inf, 0.0)
    overflow = round(total - previous)
    if overflow > 0:
        buckets.append([None, overflow])
        top = bounds[-1]
    sum_s = value(after, f"{name}_sum") - value(before, f"{name}_sum")
    return LatencyHistogram.from_dict(
        {"bounds_us": bounds, "buckets": buckets, "sum_us": round(sum_s * 1e6), "max_us": top}
    )
