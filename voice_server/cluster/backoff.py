"""Reconnect delays: exponential with full jitter, capped (pure; the random source is passed
in so tests are exact)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    __slots__ = ("_attempt", "_random", "cap_s", "factor", "initial_s")

    def __init__(
        self,
        initial_s: float = 0.05,
        cap_s: float = 1.0,
        factor: float = 2.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial_s <= 0 or cap_s < initial_s or factor < 1:
            raise ValueError("backoff needs 0 < initial_s <= cap_s and factor >= 1")
        self.initial_s = initial_s
        self.cap_s = cap_s
        self.factor = factor
        self._random = rand
        self._attempt = 0

    def next(self) -> float:
        """The delay before the next attempt: between half and all of the current step."""
        step = min(self.cap_s, self.initial_s * self.factor**self._attempt)
        self._attempt += 1
        return step * (0.5 + 0.5 * self._random())

    def reset(self) -> None:
        """A connection worked: the next failure starts from ``initial_s`` again."""
        self._attempt = 0
