"""When each user had connected media in each channel, over all their devices (pure).

The server samples every :data:`SAMPLE_MS` the ``(channel, user)`` pairs with a session whose
media is connected (:meth:`PresenceLog.sample`); consecutive samples make an interval. A burst
was *heard* by a user when their intervals cover at least :data:`HEARD_FRACTION` of it, and
*missed* otherwise ("away" = no connected media in that channel on any of their devices). A
burst that ended before the log began (a restart) is neither: :meth:`PresenceLog.heard` says
None and the replay does not count it as missed.

Bounded: intervals older than ``keep_ms`` are dropped, and each pair keeps at most
:data:`MAX_INTERVALS` (the oldest go first, counted in ``dropped``).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

__all__ = ["HEARD_FRACTION", "MAX_INTERVALS", "SAMPLE_MS", "PresenceLog"]

SAMPLE_MS = 500
HEARD_FRACTION = 0.9
MAX_INTERVALS = 500
Key = tuple[str, str]  # (channel, user)


class PresenceLog:
    def __init__(
        self, *, started_ms: int, keep_ms: int = 24 * 3600 * 1000, period_ms: int = SAMPLE_MS
    ) -> None:
        self.started_ms = started_ms
        self.keep_ms = keep_ms
        self.period_ms = period_ms
        self.now_ms = started_ms
        self._open: dict[Key, list[int]] = {}  # key -> [first seen, last seen]
        self._closed: dict[Key, deque[tuple[int, int]]] = {}
        self.dropped = 0
        self._lock = threading.Lock()  # sampled on the event loop, read by API worker threads

    def sample(self, now_ms: int, present: Iterable[Key]) -> None:
        """The pairs with connected media now."""
        seen = set(present)
        with self._lock:
            self._sample(now_ms, seen)

    def _sample(self, now_ms: int, seen: set[Key]) -> None:
        self.now_ms = now_ms
        for key in seen:
            span = self._open.get(key)
            if span is None:
                self._open[key] = [now_ms, now_ms]
            else:
                span[1] = now_ms
        for key in [k for k in self._open if k not in seen]:
            first, last = self._open.pop(key)
            closed = self._closed.setdefault(key, deque())
            if len(closed) >= MAX_INTERVALS:
                closed.popleft()
                self.dropped += 1
            closed.append((first, last + self.period_ms))
        self._prune(now_ms - self.keep_ms)

    def _prune(self, before_ms: int) -> None:
        for key in list(self._closed):
            closed = self._closed[key]
            while closed and closed[0][1] < before_ms:
                closed.popleft()
            if not closed:
                del self._closed[key]

    def intervals(self, channel: str, user: str) -> list[tuple[int, int]]:
        key = (channel, user)
        with self._lock:
            return self._intervals(key)

    def _intervals(self, key: Key) -> list[tuple[int, int]]:
        out = list(self._closed.get(key, ()))
        span = self._open.get(key)
        if span is not None:
            out.append((span[0], max(span[1] + self.period_ms, self.now_ms)))
        return out

    def heard(self, channel: str, user: str, start_ms: int, end_ms: int) -> bool | None:
        """Whether ``user`` had connected media in ``channel`` for >= 90 % of the span; None
        when the span began before this log did (unknown)."""
        if start_ms < self.started_ms:
            return None
        length = max(1, end_ms - start_ms)
        covered = 0
        for first, last in self.intervals(channel, user):
            lo, hi = max(first, start_ms), min(last, max(end_ms, start_ms + 1))
            covered += max(0, hi - lo)
        return covered >= HEARD_FRACTION * length

    def connected(self, channel: str, user: str) -> bool:
        return (channel, user) in self._open
