"""One node's reference counts of the channels its sessions are in (pure): the channel → nodes
map in Redis holds one entry per node and channel, written while the count is above zero and
removed by that node alone when it drops to zero, so a node never deletes what another node's
sessions still use."""

from __future__ import annotations

from collections import Counter

__all__ = ["ChannelRefs"]


class ChannelRefs:
    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def add(self, channel: str) -> int:
        """One more session of this node in ``channel``: the new count."""
        self._counts[channel] += 1
        return self._counts[channel]

    def remove(self, channel: str) -> int:
        """One session fewer: the new count (0: the node's entry goes; never below 0)."""
        if self._counts[channel] <= 1:
            self._counts.pop(channel, None)
            return 0
        self._counts[channel] -= 1
        return self._counts[channel]

    def count(self, channel: str) -> int:
        return self._counts.get(channel, 0)

    def items(self) -> list[tuple[str, int]]:
        return sorted(self._counts.items())
