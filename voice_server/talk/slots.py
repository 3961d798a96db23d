"""Talk slots of one channel: at most ``n`` participants are forwarded at the same time.

Slots are numbered ``1..n``, the same numbers as the SDP mids of the listeners' outgoing slot
streams (mid "0" is the participant's own microphone), and the ``slot`` field of the
``talk_started`` / ``talk_stopped`` signaling messages.

Deterministic: a new talker always gets the lowest free slot; a talker holding a slot keeps it
(acquiring again returns the same slot); releasing a talker that holds nothing is a no-op.

Pure module: no I/O, no asyncio.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["SlotTable"]

T = TypeVar("T", bound=Hashable)


class SlotTable(Generic[T]):
    """Which talker holds which of ``n`` slots."""

    __slots__ = ("_holders", "_slot_of")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError("a slot table needs at least one slot")
        # index 0 unused so that the index is the slot number
        self._holders: list[T | None] = [None] * (n + 1)
        self._slot_of: dict[T, int] = {}

    @property
    def size(self) -> int:
        """Number of slots."""
        return len(self._holders) - 1

    @property
    def busy(self) -> bool:
        """True when every slot is held (a new talker would get none)."""
        return len(self._slot_of) >= len(self._holders) - 1

    @property
    def free(self) -> int:
        """Number of free slots."""
        return len(self._holders) - 1 - len(self._slot_of)

    def __len__(self) -> int:
        """Number of slots held."""
        return len(self._slot_of)

    def __contains__(self, talker: object) -> bool:
        return talker in self._slot_of

    def acquire(self, talker: T) -> int | None:
        """The talker's slot: the one it holds, else the lowest free one, else None (busy)."""
        slot = self._slot_of.get(talker)
        if slot is not None:
            return slot
        holders = self._holders
        for i in range(1, len(holders)):
            if holders[i] is None:
                holders[i] = talker
                self._slot_of[talker] = i
                return i
        return None

    def release(self, talker: T) -> int | None:
        """Free the talker's slot and return its number; None (no-op) if it held none."""
        slot = self._slot_of.pop(talker, None)
        if slot is not None:
            self._holders[slot] = None
        return slot

    def slot_of(self, talker: T) -> int | None:
        """The slot the talker holds, or None."""
        return self._slot_of.get(talker)

    def holder(self, slot: int) -> T | None:
        """Who holds ``slot`` (1..n), or None when it is free."""
        if not 1 <= slot < len(self._holders):
            raise IndexError(f"slot {slot} outside 1..{len(self._holders) - 1}")
        return self._holders[slot]

    def held(self) -> Iterator[tuple[int, T]]:
        """(slot, talker) for every held slot, in slot order."""
        for i in range(1, len(self._holders)):
            talker = self._holders[i]
            if talker is not None:
                yield i, talker
