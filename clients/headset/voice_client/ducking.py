"""Ducking [pure]: while a level >= 2 talker holds a slot, the server's ``duck`` says how far to
lower every other slot; this turns those messages into a gain per slot m-line (mid).

Mids: ``0`` is the microphone; the slots of the channels heard follow in blocks of ``slots``,
the own channel's first, then each monitored channel's in the order they were added (the order
of the server's offers). A slot that is itself ducking others is never ducked; with several
ducks at once the deepest applies.
"""

from __future__ import annotations

__all__ = ["Ducking"]


class Ducking:
    def __init__(self, channels: list[str], slots: int = 3) -> None:
        self.channels = channels  # blocks of slot m-lines, in offer order
        self.slots = slots
        self._active: dict[str, int] = {}  # mid of a ducking slot -> its db

    def mid(self, channel: str, slot: int) -> str | None:
        if channel not in self.channels or not 1 <= slot <= self.slots:
            return None
        return str(self.channels.index(channel) * self.slots + slot)

    def set(self, channel: str, slot: int, db: int, mid: str | None = None) -> None:
        """A duck of ``channel``'s ``slot`` (``mid``: a console's, the m-line already known)."""
        mid = mid if mid is not None else self.mid(channel, slot)
        if mid is None:
            return
        if db < 0:
            self._active[mid] = db
        else:
            self._active.pop(mid, None)

    @property
    def db(self) -> int:
        """The duck now (0: none)."""
        return min(self._active.values(), default=0)

    def gain(self, mid: str) -> float:
        """The linear gain of slot ``mid`` now."""
        if not self._active or mid in self._active:
            return 1.0
        return float(10 ** (self.db / 20))
