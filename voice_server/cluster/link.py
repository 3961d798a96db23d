"""Whether this node's link to Redis works, as its last Redis calls found it (pure).

Every call of the node's own loop (heartbeat, renewals, presence) and of the join path reports
its outcome here. The link is ``up`` from the first success until a call fails, ``down`` from
then until one succeeds again: a join asks :attr:`LinkState.up` and is refused at once while the
link is down (it never waits on a Redis known to be away); the loop keeps trying every heartbeat,
so the link comes back by itself within one heartbeat of Redis's return.
"""

from __future__ import annotations

__all__ = ["LinkState"]


class LinkState:
    __slots__ = ("changed_at", "downs", "failures", "successes", "up")

    def __init__(self) -> None:
        self.up = False  # not known to work before the first success
        self.changed_at: float | None = None
        self.downs = 0  # up -> down transitions
        self.failures = 0  # failed calls
        self.successes = 0

    def ok(self, now: float) -> bool:
        """A call worked; True when this brought the link up."""
        self.successes += 1
        if self.up:
            return False
        self.up = True
        self.changed_at = now
        return True

    def failed(self, now: float) -> bool:
        """A call failed (refused, timed out); True when this took the link down."""
        self.failures += 1
        if not self.up:
            return False
        self.up = False
        self.downs += 1
        self.changed_at = now
        return True

    @property
    def state(self) -> str:
        return "up" if self.up else "down"
