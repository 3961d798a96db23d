"""Prometheus text exposition built from plain counters at scrape time.

Hot paths only increment integers in dicts or attributes; nothing here runs per packet or per
message. Components register a *collector* (a function returning metric families) and
:meth:`MetricsRegistry.render` calls them when ``/metrics`` is scraped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Labels = Mapping[str, str]


@dataclass(slots=True)
class Family:
    name: str
    kind: str  # counter | gauge | histogram
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, suffix: str = "", **labels: str) -> Family:
        self.samples.append((suffix, labels, value))
        return self


Collector = Callable[[], Iterable[Family]]


def counter_family(name: str, help: str, counts: Mapping[str, int], label: str) -> Family:
    fam = Family(name, "counter", help)
    for key, value in sorted(counts.items()):
        fam.add(value, **{label: key})
    return fam


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return repr(float(value))


class MetricsRegistry:
    def __init__(self) -> None:
        self._collectors: list[Collector] = []

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def render(self) -> str:
        lines: list[str] = []
        for collector in self._collectors:
            for fam in collector():
                lines.append(f"# HELP {fam.name} {fam.help}")
                lines.append(f"# TYPE {fam.name} {fam.kind}")
                for suffix, labels, value in fam.samples:
                    label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                    sel = f"{{{label_text}}}" if label_text else ""
                    lines.append(f"{fam.name}{suffix}{sel} {_format(value)}")
        return "\n".join(lines) + "\n"


@dataclass(slots=True)
class SignalingCounters:
    """Counters of the signaling layer; incremented in place, read at scrape time."""

    connections: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    joins: int = 0
    resumes: int = 0
    replacements: int = 0
    expirations: int = 0
    send_queue_overflows: int = 0
    rate_limited: int = 0
    revocations: int = 0

    def families(self) -> list[Family]:
        return [
            Family("voice_ws_connections_total", "counter", "WebSocket connections accepted").add(
                self.connections
            ),
            counter_family(
                "voice_signaling_messages_total",
                "Client messages received by type",
                self.messages,
                "type",
            ),
            counter_family(
                "voice_signaling_errors_total",
                "Errors sent to clients by code",
                self.errors,
                "code",
            ),
            Family("voice_session_joins_total", "counter", "New sessions").add(self.joins),
            Family("voice_session_resumes_total", "counter", "Sessions resumed").add(self.resumes),
            Family(
                "voice_session_replacements_total",
                "counter",
                "Sessions replaced by a new join of the same user and device",
            ).add(self.replacements),
            Family(
                "voice_session_expirations_total",
                "counter",
                "Detached sessions closed after the grace period",
            ).add(self.expirations),
            Family(
                "voice_signaling_send_overflows_total",
                "counter",
                "Connections closed because their send queue was full",
            ).add(self.send_queue_overflows),
            Family(
                "voice_signaling_rate_limited_total",
                "counter",
                "Client messages dropped by the rate limit",
            ).add(self.rate_limited),
            Family(
                "voice_session_revocations_total",
                "counter",
                "Live sessions ended because the directory no longer allows them",
            ).add(self.revocations),
        ]


@dataclass(slots=True)
class JobCounters:
    """Steps of the periodic jobs that run once per deployment (``store/job_lock.py``):
    ``(job, outcome)`` with outcome ran | skipped | failed, and waits for a step of the same
    job still running in this process."""

    steps: Counter[tuple[str, str]] = field(default_factory=Counter)
    waits: Counter[str] = field(default_factory=Counter)

    def families(self) -> list[Family]:
        steps = Family(
            "voice_jobs_steps_total",
            "counter",
            "Periodic job steps by outcome (skipped: another node holds or just ran the job)",
        )
        for (job, outcome), value in sorted(self.steps.items()):
            steps.add(value, job=job, outcome=outcome)
        waits = counter_family(
            "voice_jobs_lock_waits_total",
            "Job steps that waited for this process's previous step of the same job",
            self.waits,
            "job",
        )
        return [steps, waits]
