"""One arbiter per channel: slots, priority and pre-emption for talkers on every worker (pure).

With several media workers (README "Several processes on one machine") the worker that owns a
channel runs its :class:`SlotArbiter`; talkers anywhere send it a *claim* at their first voiced
packet (and forward speculatively meanwhile, as one process does), *confirm* when their attack
confirms the burst and *release* when it ends or was a click. The rules are the router's
(``media/router.py``, README "Priority"): the lowest free slot; when every slot is busy a
higher-level claim pauses the lowest-level, most recently started holder below it (never level
3) and takes its slot tentatively: its confirmation makes that holder ``preempted`` (it waits),
its release (a click) gives the holder its slot back; anyone else waits, and a freed slot goes to
the highest-level, longest-waiting claim.

Every decision carries the arbiter's epoch (the channel's owner epoch,
:mod:`voice_server.workers.ownership`); an :class:`EpochFence` on each worker drops decisions
older than the epoch it knows, so an arbiter replaced after its worker died is never obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voice_server.talk.slots import SlotTable

__all__ = ["NEVER_PREEMPTED", "Decision", "EpochFence", "SlotArbiter"]

NEVER_PREEMPTED = 3
#: granted: forward on ``slot`` (``tentative`` until the claim confirms); denied: no slot, wait
#: (slot_busy); paused: stop forwarding now, no event yet; preempted: the cut-in ``by`` is
#: confirmed (talk_stopped + preempted), wait for a slot
Verb = Literal["granted", "denied", "paused", "preempted"]


@dataclass(frozen=True, slots=True)
class Decision:
    verb: Verb
    talker: str
    worker: int
    epoch: int
    slot: int = 0
    tentative: bool = False
    by: str = ""


@dataclass(eq=False, slots=True)
class _Claim:
    talker: str
    worker: int
    priority: int
    started: int = 0
    tentative: bool = True
    preempting: str | None = None  # the announced holder this tentative claim paused
    paused: int | None = None  # the slot this holder lost to a tentative cut-in


class SlotArbiter:
    """The slots of one channel, for claims from any worker."""

    def __init__(self, slots: int, epoch: int) -> None:
        self.table: SlotTable[str] = SlotTable(slots)
        self.epoch = epoch
        self._claims: dict[str, _Claim] = {}  # holders, paused holders and waiters
        self._waiting: list[_Claim] = []
        self._starts = 0

    # ------------------------------------------------------------------ claims
    def claim(self, talker: str, worker: int, priority: int) -> list[Decision]:
        """``talker`` (on ``worker``, at level ``priority``) has a first voiced packet."""
        known = self._claims.get(talker)
        held = self.table.slot_of(talker)
        if known is not None and held is not None:
            return [self._d("granted", known, held, tentative=known.tentative)]
        if known is not None and (known in self._waiting or known.paused is not None):
            return [self._d("denied", known)]
        c = self._claims[talker] = _Claim(talker, worker, priority)
        slot = self.table.acquire(talker)
        out: list[Decision] = []
        if slot is None:
            victim = self._victim(priority)
            if victim is None:
                c.tentative = False
                self._waiting.append(c)
                return [self._d("denied", c)]
            out += self._pause(victim, c)
            slot = self.table.acquire(talker)
            assert slot is not None
        self._starts += 1
        c.started = self._starts
        out.append(self._d("granted", c, slot, tentative=True))
        return out

    def confirm(self, talker: str) -> list[Decision]:
        """The claim's attack confirmed its burst (its worker sends talk_started)."""
        c = self._claims.get(talker)
        if c is None or not c.tentative or self.table.slot_of(talker) is None:
            return []
        c.tentative = False
        victim = self._claims.get(c.preempting) if c.preempting else None
        c.preempting = None
        if victim is None or victim.paused is None:
            return []
        slot, victim.paused = victim.paused, None
        self._waiting.append(victim)
        return [self._d("preempted", victim, slot, by=talker)]

    def release(self, talker: str) -> list[Decision]:
        """The burst ended, was a click, or its talker left."""
        c = self._claims.pop(talker, None)
        if c is None:
            return []
        if c in self._waiting:
            self._waiting.remove(c)
            return []
        if c.paused is not None:  # a paused holder left: the cut-in keeps the slot
            return []
        slot = self.table.release(talker)
        if slot is None:
            return []
        restored = self._claims.get(c.preempting) if c.tentative and c.preempting else None
        if restored is not None and restored.paused is not None:  # a click: the holder resumes
            restored.paused = None
            self.table.acquire(restored.talker)
            return [self._d("granted", restored, slot)]
        return self._serve_waiter()

    def drop_worker(self, worker: int) -> list[Decision]:
        """Every claim of a worker that died; the decisions for the others."""
        out: list[Decision] = []
        for talker in [t for t, c in self._claims.items() if c.worker == worker]:
            out += self.release(talker)
        return [d for d in out if d.worker != worker]

    # ------------------------------------------------------------------ internals
    def _victim(self, level: int) -> _Claim | None:
        best: _Claim | None = None
        for _, talker in self.table.held():
            c = self._claims[talker]
            if c.priority >= level or c.priority >= NEVER_PREEMPTED:
                continue
            if best is None or (c.priority, -c.started) < (best.priority, -best.started):
                best = c
        return best

    def _pause(self, victim: _Claim, by: _Claim) -> list[Decision]:
        slot = self.table.release(victim.talker)
        assert slot is not None
        out = [self._d("paused", victim, slot)]
        if victim.tentative:  # a tentative cut-in pre-empted in turn: it waits, its victim
            by.preempting, victim.preempting = victim.preempting, None  # is now ``by``'s
            self._waiting.append(victim)
            out.append(self._d("denied", victim))
        else:
            victim.paused = slot
            by.preempting = victim.talker
        return out

    def _serve_waiter(self) -> list[Decision]:
        if not self._waiting:
            return []
        top = max(w.priority for w in self._waiting)
        waiter = next(w for w in self._waiting if w.priority == top)
        self._waiting.remove(waiter)
        slot = self.table.acquire(waiter.talker)
        assert slot is not None
        self._starts += 1
        waiter.started = self._starts
        waiter.tentative = False
        return [self._d("granted", waiter, slot)]

    def _d(
        self, verb: Verb, c: _Claim, slot: int = 0, *, tentative: bool = False, by: str = ""
    ) -> Decision:
        return Decision(verb, c.talker, c.worker, self.epoch, slot, tentative, by)


class EpochFence:
    """A worker's view of each channel's owner epoch: decisions and relay packets older than it
    are dropped (``stale`` counts them)."""

    __slots__ = ("known", "stale")

    def __init__(self) -> None:
        self.known: dict[str, int] = {}
        self.stale = 0

    def admit(self, channel: str, epoch: int) -> bool:
        if epoch < self.known.get(channel, 0):
            self.stale += 1
            return False
        self.known[channel] = epoch
        return True
