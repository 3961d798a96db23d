"""The relay's fan-out rule (pure): where one talker's packet goes between processes.

A packet of a channel goes **once** to every *other* worker that has listeners of that channel:
never once per listener (the receiving worker fans it out to its own listeners), never back to
the worker it came from, never to a worker with no listener of the channel. Each worker reports
the channels it has listeners of; the targets of each channel are a tuple rebuilt when a report
changes, so the hot path does one dict look-up per packet.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["RelayTargets"]

_NONE: tuple[int, ...] = ()


class RelayTargets:
    """The relay targets as seen from worker ``self_index``."""

    __slots__ = ("_by_channel", "_listening", "self_index")

    def __init__(self, self_index: int) -> None:
        self.self_index = self_index
        self._listening: dict[int, frozenset[str]] = {}  # worker -> channels it has listeners of
        self._by_channel: dict[str, tuple[int, ...]] = {}

    def set_listening(self, worker: int, channels: Iterable[str]) -> bool:
        """Worker ``worker`` now has listeners of exactly ``channels``; True when that changed
        anything."""
        new = frozenset(channels)
        if self._listening.get(worker, frozenset()) == new:
            return False
        if new:
            self._listening[worker] = new
        else:
            self._listening.pop(worker, None)
        self._rebuild()
        return True

    def remove_worker(self, worker: int) -> None:
        """A worker died or left: it is sent nothing more."""
        self.set_listening(worker, ())

    def targets(self, channel: str) -> tuple[int, ...]:
        """The workers a packet of ``channel`` from this worker goes to, lowest index first."""
        return self._by_channel.get(channel, _NONE)

    def _rebuild(self) -> None:
        by_channel: dict[str, list[int]] = {}
        for worker in sorted(self._listening):
            if worker == self.self_index:
                continue
            for channel in self._listening[worker]:
                by_channel.setdefault(channel, []).append(worker)
        self._by_channel = {c: tuple(ws) for c, ws in by_channel.items()}
