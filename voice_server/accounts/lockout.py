"""Login throttling arithmetic [pure]: failures per key → exponential lockout.

Keys are ``user:<name>`` (threshold 5) and ``addr:<ip>`` (threshold 20: a whole city hall can
sit behind one address). From the threshold on, each further failure locks the key for
30 s · 2^(failures − threshold), at most an hour. A success clears the account's key; failures
older than a day are forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_THRESHOLD = 5
ADDRESS_THRESHOLD = 20
BASE_SECONDS = 30.0
MAX_SECONDS = 3600.0
FORGET_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class Throttle:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


def threshold_for(key: str) -> int:
    return ADDRESS_THRESHOLD if key.startswith("addr:") else USER_THRESHOLD


def lock_seconds(failures: int, threshold: int) -> float:
    if failures < threshold:
        return 0.0
    return min(BASE_SECONDS * 2.0 ** (failures - threshold), MAX_SECONDS)


def current(state: Throttle | None, now: float) -> Throttle:
    if state is None or now - state.last_failure > FORGET_SECONDS:
        return Throttle()
    return state


def after_failure(state: Throttle | None, now: float, threshold: int) -> Throttle:
    failures = current(state, now).failures + 1
    seconds = lock_seconds(failures, threshold)
    return Throttle(failures, now, now + seconds if seconds else 0.0)


def remaining(state: Throttle | None, now: float) -> float:
    """Seconds until the key may try again (0 when it may now)."""
    if state is None:
        return 0.0
    return max(0.0, state.locked_until - now)
