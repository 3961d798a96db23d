"""Placement of a new participant on a media worker (pure).

The rule (README "Several processes on one machine"): the least-loaded live worker, preferring
one that already carries the participant's channel, unless that one has more than
``PREFER_SLACK`` participants more than the least loaded (a channel may then span workers: the
relay joins them); ties go to the lowest index. ``round-robin`` (config
``workers_placement``) ignores load and channels and puts each new participant on the next live
worker in turn: tests use it to spread one channel's members over every worker.
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

__all__ = ["MODES", "PREFER_SLACK", "Placement"]

PREFER_SLACK = 8
Mode = Literal["least-loaded", "round-robin"]
MODES: tuple[Mode, ...] = ("least-loaded", "round-robin")


class Placement:
    """Which worker carries how many participants of which channel."""

    __slots__ = ("_carried", "_load", "_next", "alive", "mode", "slack")

    def __init__(
        self, workers: int, mode: Mode = "least-loaded", slack: int = PREFER_SLACK
    ) -> None:
        if workers < 1:
            raise ValueError("placement needs at least one worker")
        if mode not in MODES:
            raise ValueError(f"placement mode must be one of {', '.join(MODES)}")
        self.mode = mode
        self.slack = slack
        self.alive = set(range(workers))
        self._load = [0] * workers
        self._carried: list[Counter[str]] = [Counter() for _ in range(workers)]
        self._next = 0

    @property
    def workers(self) -> int:
        return len(self._load)

    def load(self, worker: int) -> int:
        return self._load[worker]

    def carries(self, worker: int, channel: str) -> bool:
        return self._carried[worker][channel] > 0

    def choose(self, channel: str, avoid: frozenset[int] = frozenset()) -> int:
        """The worker for a new participant of ``channel`` (not yet counted: call
        :meth:`placed`), none of ``avoid`` (workers not answering now) unless every live
        worker is one. Raises LookupError when no worker is alive."""
        live = sorted(self.alive - avoid) or sorted(self.alive)
        if not live:
            raise LookupError("no media worker is alive")
        if self.mode == "round-robin":
            after = [w for w in live if w >= self._next]
            worker = after[0] if after else live[0]
            self._next = worker + 1
            return worker
        least = min(live, key=lambda w: (self._load[w], w))
        carriers = [w for w in live if self._carried[w][channel] > 0]
        if carriers:
            best = min(carriers, key=lambda w: (self._load[w], w))
            if self._load[best] - self._load[least] <= self.slack:
                return best
        return least

    def placed(self, worker: int, channel: str) -> None:
        self._load[worker] += 1
        self._carried[worker][channel] += 1

    def left(self, worker: int, channel: str) -> None:
        carried = self._carried[worker]
        if carried[channel] <= 0:
            return
        self._load[worker] -= 1
        carried[channel] -= 1
        if not carried[channel]:
            del carried[channel]

    def down(self, worker: int) -> None:
        """The worker died: nothing is placed on it and its participants count no more (they
        rejoin and are placed again)."""
        self.alive.discard(worker)
        self._load[worker] = 0
        self._carried[worker].clear()

    def up(self, worker: int) -> None:
        self.alive.add(worker)
