"""Retention rules → what a purge removes (pure).

A channel keeps its call log for ``retention_days`` (None: for ever); a legal hold keeps
everything of that channel whatever the retention says. An utterance (or gap) is expired when
its start is older than ``now - retention_days``.

Unreadable spool files (``spool/damaged``) cannot say their channel: they are kept as long as the
longest retention of any channel, and for ever while any channel keeps for ever or is held.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DAY_MS", "Cutoff", "Rule", "cutoffs", "unknown_channel_cutoff"]

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Rule:
    channel: str
    retention_days: int | None
    legal_hold: bool


@dataclass(frozen=True, slots=True)
class Cutoff:
    channel: str
    before_ms: int  # what started before this is expired


def cutoffs(rules: list[Rule], now_ms: int) -> list[Cutoff]:
    """One cutoff per channel that has a retention and no legal hold, by channel name."""
    return [
        Cutoff(r.channel, now_ms - r.retention_days * DAY_MS)
        for r in sorted(rules, key=lambda r: r.channel)
        if r.retention_days is not None and not r.legal_hold
    ]


def unknown_channel_cutoff(rules: list[Rule], now_ms: int) -> int | None:
    """The cutoff for data whose channel is unknown; None: keep it."""
    if not rules or any(r.retention_days is None or r.legal_hold for r in rules):
        return None
    return now_ms - max(r.retention_days or 0 for r in rules) * DAY_MS
