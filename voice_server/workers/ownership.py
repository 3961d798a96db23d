"""Which worker owns (arbitrates) each channel, fenced by an epoch (pure; kept by the parent).

The first worker that carries a channel owns it; its slot arbiter
(:class:`voice_server.talk.arbiter.SlotArbiter`) decides for the whole channel. Every change of
owner takes a new epoch from one counter that only grows (across all channels, so no per-channel
history is kept): a worker drops a decision or relay packet whose epoch is older than the one it
knows for the channel. When a worker dies its channels are re-owned by a live carrier (the lowest
index), else they wait for the next worker that carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Owner", "Ownership"]


@dataclass(frozen=True, slots=True)
class Owner:
    worker: int
    epoch: int


class Ownership:
    __slots__ = ("_epoch", "_owners")

    def __init__(self) -> None:
        self._owners: dict[str, Owner] = {}
        self._epoch = 0

    def owner(self, channel: str) -> Owner | None:
        return self._owners.get(channel)

    def carry(self, channel: str, worker: int) -> Owner:
        """``worker`` carries ``channel`` now: its owner (``worker`` itself when the channel had
        none)."""
        owner = self._owners.get(channel)
        if owner is None:
            owner = self._owners[channel] = Owner(worker, self._next())
        return owner

    def release(self, channel: str) -> None:
        """No worker carries ``channel`` any more."""
        self._owners.pop(channel, None)

    def worker_died(
        self, worker: int, carriers: Mapping[str, Iterable[int]]
    ) -> dict[str, Owner | None]:
        """Re-own the dead worker's channels: each goes to its lowest-index live carrier
        (``carriers``: channel → the live workers carrying it) with a new epoch, or is released
        (None) when no live worker carries it. Returns the changes."""
        changes: dict[str, Owner | None] = {}
        for channel, owner in sorted(self._owners.items()):
            if owner.worker != worker:
                continue
            live = sorted(w for w in carriers.get(channel, ()) if w != worker)
            if live:
                changes[channel] = self._owners[channel] = Owner(live[0], self._next())
            else:
                del self._owners[channel]
                changes[channel] = None
        return changes

    def channels(self) -> list[str]:
        return sorted(self._owners)

    def owned_by(self, worker: int) -> list[str]:
        return sorted(c for c, o in self._owners.items() if o.worker == worker)

    def _next(self) -> int:
        self._epoch += 1
        return self._epoch
