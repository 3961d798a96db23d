"""Talk-burst detection from RFC 6464 audio levels, fed once per received RTP packet.

A participant "talks" when their packets say the audio is loud enough for long enough (attack),
and stops after a time without loud packets (hangover). The level comes from the RFC 6464
client-to-mixer header extension: a value 0..127 meaning -dBov, so *smaller is louder*. The
voice-activity (V) flag of that extension is deliberately ignored: Chromium sets it on every
packet, even on silence at level 127.

Time is an integer in milliseconds from any monotonic source (arrival time, or a time derived
from the RTP timestamp). Silence is detected by time, not only by packets: DTX and push-to-talk
clients send nothing (or almost nothing) while quiet, so the caller runs a periodic timer and
calls :meth:`TalkDetector.tick`.

Pure module: no I/O, no asyncio. Per packet it does a few integer comparisons and allocates
nothing (events are members of an :class:`~enum.IntEnum`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

__all__ = ["TalkDetector", "TalkEvent", "TalkRules"]


class TalkEvent(IntEnum):
    """What a packet or a tick changed."""

    NONE = 0
    STARTED = 1
    STOPPED = 2


@dataclass(frozen=True, slots=True)
class TalkRules:
    """Thresholds of the detector.

    ``threshold_dbov``: a packet is voiced when its level is <= this (50 = louder than -50 dBov).
    ``attack_ms``: voiced packets must span this long before a burst starts (0 = first packet).
    ``hangover_ms``: a burst stops after this long without a voiced packet.
    ``attack_gap_ms``: during the attack, a gap between voiced packets longer than this restarts
    the count (one quiet or lost 20 ms packet between two voiced ones is a 40 ms gap: tolerated).
    ``no_level_is_voiced``: how to count a packet without the audio-level extension. True by
    default: such a client gives no other evidence than sending, which is what a push-to-talk or
    DTX client does only while speaking.
    """

    threshold_dbov: int = 50
    attack_ms: int = 40
    hangover_ms: int = 600
    attack_gap_ms: int = 50
    no_level_is_voiced: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.threshold_dbov <= 127:
            raise ValueError("threshold_dbov must be within 0..127")
        if self.attack_ms < 0:
            raise ValueError("attack_ms must be >= 0")
        if self.hangover_ms <= 0:
            raise ValueError("hangover_ms must be > 0")
        if self.attack_gap_ms <= 0:
            raise ValueError("attack_gap_ms must be > 0")


_NONE = TalkEvent.NONE
_NEVER = -(1 << 62)
_STARTED = TalkEvent.STARTED
_STOPPED = TalkEvent.STOPPED


class TalkDetector:
    """Decides when one participant's talk burst starts and stops.

    Call :meth:`feed` for every received packet and :meth:`tick` from a periodic timer (every
    50-100 ms is plenty); both return a :class:`TalkEvent`. Times must not go backwards; a time
    older than the newest seen is treated as the newest.
    """

    __slots__ = (
        "_attack",
        "_gap",
        "_hangover",
        "_hold_until_ms",
        "_last_ms",
        "_last_voiced_ms",
        "_none_voiced",
        "_quiet_in_run",
        "_run_start_ms",
        "_talking",
        "_threshold",
        "rules",
        "started_at_ms",
    )

    def __init__(self, rules: TalkRules | None = None) -> None:
        self.rules = rules if rules is not None else TalkRules()
        self._threshold = self.rules.threshold_dbov
        self._attack = self.rules.attack_ms
        self._hangover = self.rules.hangover_ms
        self._gap = self.rules.attack_gap_ms
        self._none_voiced = self.rules.no_level_is_voiced
        self._talking = False
        self._run_start_ms = -1  # first voiced packet of the current attack run, -1 = none
        self._last_voiced_ms = -1
        self._quiet_in_run = 0
        self._last_ms = _NEVER
        self._hold_until_ms = _NEVER
        #: When the current (or last) burst's first voiced packet arrived; -1 before any burst.
        self.started_at_ms = -1

    @property
    def talking(self) -> bool:
        return self._talking

    @property
    def attacking(self) -> bool:
        """A run of voiced packets is in progress that has not (yet) started a burst."""
        return not self._talking and self._run_start_ms >= 0

    @property
    def run_start_ms(self) -> int:
        """Arrival of the first voiced packet of the run in progress; -1 when none."""
        return self._run_start_ms

    @property
    def last_voiced_ms(self) -> int:
        """Arrival of the newest voiced packet; -1 before any."""
        return self._last_voiced_ms

    def hold(self, now_ms: int, hold_ms: int) -> bool:
        """Keep a burst in progress going for ``hold_ms`` from ``now_ms`` without voiced packets
        (its talker's network changed: the ICE restart that brings its voice back takes a few
        hundred ms, and the burst should not end and start again meanwhile). The hold ends with
        the next voiced packet; the normal hangover follows. False when no burst is going on."""
        if not self._talking:
            return False
        self._hold_until_ms = max(self._hold_until_ms, now_ms + hold_ms)
        return True

    def reset(self) -> None:
        """Forget everything (the participant left, or its stream was replaced)."""
        self._hold_until_ms = _NEVER
        self._talking = False
        self._run_start_ms = -1
        self._last_voiced_ms = -1
        self._quiet_in_run = 0

    def feed(self, now_ms: int, level: int | None) -> TalkEvent:
        """One received packet at ``now_ms`` with RFC 6464 ``level`` (0..127, or None)."""
        if now_ms < self._last_ms:
            now_ms = self._last_ms
        else:
            self._last_ms = now_ms
        voiced = self._none_voiced if level is None else level <= self._threshold

        if self._talking:
            if voiced:
                self._last_voiced_ms = now_ms
                self._hold_until_ms = _NEVER
                return _NONE
            if now_ms - self._last_voiced_ms >= self._hangover and now_ms >= self._hold_until_ms:
                return self._stop()
            return _NONE

        # Not talking: attack phase.
        if not voiced:
            if self._run_start_ms >= 0:
                self._quiet_in_run += 1
                if self._quiet_in_run > 1:
                    self._run_start_ms = -1
            return _NONE
        if self._run_start_ms < 0 or now_ms - self._last_voiced_ms > self._gap:
            self._run_start_ms = now_ms
        self._quiet_in_run = 0
        self._last_voiced_ms = now_ms
        if now_ms - self._run_start_ms >= self._attack:
            self._talking = True
            self.started_at_ms = self._run_start_ms
            self._run_start_ms = -1
            return _STARTED
        return _NONE

    def tick(self, now_ms: int) -> TalkEvent:
        """The caller's timer: ends a burst when no voiced packet came for the hangover."""
        if now_ms < self._last_ms:
            now_ms = self._last_ms
        else:
            self._last_ms = now_ms
        if (
            self._talking
            and now_ms - self._last_voiced_ms >= self._hangover
            and now_ms >= self._hold_until_ms
        ):
            return self._stop()
        return _NONE

    def _stop(self) -> TalkEvent:
        self._hold_until_ms = _NEVER
        self._talking = False
        self._run_start_ms = -1
        self._quiet_in_run = 0
        return _STOPPED
