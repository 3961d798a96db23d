"""Who heard an announcement (pure): a member heard it in a channel when a session of theirs
(any device) was in that channel with connected media for at least 90 % of it.

The player samples, every :data:`SAMPLE_SECONDS` while the announcement plays into a channel,
the users with connected media there (:meth:`Tally.sample`); a user's fraction is the share of
samples they were in.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["HEARD_FRACTION", "SAMPLE_SECONDS", "Tally", "not_heard"]

HEARD_FRACTION = 0.9
SAMPLE_SECONDS = 0.2


class Tally:
    def __init__(self) -> None:
        self.samples = 0
        self.present: Counter[str] = Counter()

    def sample(self, users: Iterable[str]) -> None:
        self.samples += 1
        self.present.update(set(users))

    def fractions(self, members: Iterable[str]) -> dict[str, float]:
        """Each member's share (and anyone else who heard it: a supervisor not a member)."""
        everyone = set(members) | set(self.present)
        if self.samples == 0:
            return dict.fromkeys(everyone, 0.0)
        return {u: min(1.0, self.present[u] / self.samples) for u in everyone}


def not_heard(members: Iterable[str], heard: Mapping[str, bool]) -> list[str]:
    """The members who did not hear it, sorted."""
    return sorted(u for u in set(members) if not heard.get(u, False))
