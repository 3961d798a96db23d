"""Medians over repeated load tests (pure module).

On a machine shared with other work a single run says little: ``voice-server loadtest --repeat N``
runs the plan N times (a fresh server each time) and reports, for each headline figure, the
median over the runs that were ``valid`` (the generator kept up and the machine was otherwise
quiet), with the range and how many runs were valid. Runs that were not valid are kept in the
document with their reasons but not counted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

__all__ = ["HEADLINE", "combine", "dotted"]

HEADLINE = (
    "participants_joined",
    "participants_heard",
    "join_ms.p95",
    "joins_per_second",
    "server.loss",
    "server.added_latency_ms.p50",
    "server.added_latency_ms.p99",
    "server.cpu_cores",
    "server.cpu_us_per_copy",
    "server.rss_mb",
    "server.copies_per_second",
    "generator.cpu_cores",
    "generator.loss",
    "generator.jitter_ms.p99",
    "generator.e2e_latency_ms.p99",
    "machine.other_cores",
)


def dotted(doc: dict[str, Any], path: str) -> Any:
    """``doc["a"]["b"]`` for ``"a.b"``; None when any part is missing."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def combine(runs: Sequence[dict[str, Any]], keys: Sequence[str] = HEADLINE) -> dict[str, Any]:
    """``{"runs", "valid_runs", "median": {key: …}, "range": {key: [min, max]}, "results"}``."""
    valid = [r for r in runs if r.get("valid")]
    median: dict[str, float | None] = {}
    spread: dict[str, list[float] | None] = {}
    for key in keys:
        values = [float(v) for r in valid if isinstance(v := dotted(r, key), int | float)]
        median[key] = round(statistics.median(values), 4) if values else None
        spread[key] = [min(values), max(values)] if values else None
    return {
        "runs": len(runs),
        "valid_runs": len(valid),
        "median": median,
        "range": spread,
        "invalid_reasons": [r.get("valid_reasons", []) for r in runs if not r.get("valid")],
        "results": list(runs),
    }
