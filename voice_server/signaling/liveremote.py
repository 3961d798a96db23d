"""The live view's picture of other cluster nodes (pure): for each origin node (and the
incarnation of its process), the participants it reported per channel. Filled by the cluster's
event relay through :class:`LiveHub`'s remote methods; empty on one box.

An origin's report of a channel replaces its earlier one (an empty list removes it); a full
state replaces everything the origin had; a new incarnation of an origin forgets what the
previous process reported. :meth:`retain` drops the origins that are no longer live (a node that
died without a word) and :meth:`clear` everything (after a lost subscription, before the other
nodes send their state again).
"""

from __future__ import annotations

from typing import Any

__all__ = ["RemoteLive"]

Participants = list[dict[str, Any]]


class RemoteLive:
    def __init__(self) -> None:
        self._incarnation: dict[str, str] = {}
        self._channels: dict[str, dict[str, Participants]] = {}  # origin → channel → list

    def update(self, origin: str, incarnation: str, channel: str, rows: Participants) -> set[str]:
        """``origin`` reports ``rows`` in ``channel``: the channels whose picture changed."""
        changed = self._adopt(origin, incarnation)
        held = self._channels.setdefault(origin, {})
        if rows:
            held[channel] = [{**row, "node": origin} for row in rows]
            changed.add(channel)
        elif held.pop(channel, None) is not None:
            changed.add(channel)
        return changed

    def replace(self, origin: str, incarnation: str, state: dict[str, Participants]) -> set[str]:
        """``origin``'s full state: the channels whose picture changed."""
        changed = self._adopt(origin, incarnation)
        changed |= set(self._channels.pop(origin, {}))
        for channel, rows in state.items():
            if rows:
                changed |= self.update(origin, incarnation, channel, rows)
        return changed

    def retain(self, live: set[str]) -> set[str]:
        """Forget the origins not in ``live``: the channels whose picture changed."""
        changed: set[str] = set()
        for origin in [o for o in self._channels if o not in live]:
            changed |= self.forget(origin)
        return changed

    def forget(self, origin: str) -> set[str]:
        self._incarnation.pop(origin, None)
        return set(self._channels.pop(origin, {}))

    def clear(self) -> set[str]:
        changed = {c for held in self._channels.values() for c in held}
        self._channels.clear()
        self._incarnation.clear()
        return changed

    def participants(self, channel: str) -> Participants:
        rows: Participants = []
        for origin in sorted(self._channels):
            rows.extend(self._channels[origin].get(channel, ()))
        return rows

    def origins(self) -> list[str]:
        return sorted(self._channels)

    def _adopt(self, origin: str, incarnation: str) -> set[str]:
        """A new process under ``origin``'s id forgets what the previous one reported."""
        changed: set[str] = set()
        known = self._incarnation.get(origin)
        if known is not None and known != incarnation:
            changed = self.forget(origin)
        self._incarnation[origin] = incarnation
        return changed
