"""Per-participant network diagnostics: the latest ``stats`` report of each session.

A client reports every ~5 s the path its media takes (``udp``, ``tcp`` for ICE-TCP,
``turn-tls`` through the TURN relay over TLS), its round-trip time, loss, jitter and concealed
(played but not received) share. These are what the client *says*: shown to administrators to
answer "it's choppy", never used for a security or routing decision. Bounded: one report kept per
live session (dropped when it ends), at most one accepted per :data:`MIN_INTERVAL` seconds per
session (the rest are counted and ignored), a fixed set of path labels. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["MIN_INTERVAL", "PATHS", "Diagnostics", "Report"]

#: the labels a path can have (``/metrics`` uses exactly these: bounded)
PATHS = ("udp", "tcp", "turn-tls")
MIN_INTERVAL = 2.0


@dataclass(frozen=True, slots=True)
class Report:
    path: str
    rtt_ms: float | None
    loss: float | None
    jitter_ms: float | None
    concealed_ratio: float | None
    at: float  # when it arrived (the hub's clock)

    def as_dict(self) -> dict[str, object]:
        """What it says (not when it arrived)."""
        return {k: v for k, v in asdict(self).items() if k != "at"}


@dataclass(slots=True)
class Diagnostics:
    min_interval: float = MIN_INTERVAL
    latest: dict[str, Report] = field(default_factory=dict)  # session id -> report
    accepted: int = 0
    limited: int = 0

    def record(self, session_id: str, report: Report) -> bool:
        """Keep ``report`` as the session's latest; False (counted) when it came too soon."""
        if report.path not in PATHS:
            raise ValueError("unknown path")
        previous = self.latest.get(session_id)
        if previous is not None and report.at - previous.at < self.min_interval:
            self.limited += 1
            return False
        self.latest[session_id] = report
        self.accepted += 1
        return True

    def get(self, session_id: str) -> Report | None:
        return self.latest.get(session_id)

    def forget(self, session_id: str) -> None:
        self.latest.pop(session_id, None)

    def path_counts(self) -> dict[str, int]:
        """Participants per reported path, every label present (zero when none)."""
        counts = dict.fromkeys(PATHS, 0)
        for report in self.latest.values():
            counts[report.path] += 1
        return counts
