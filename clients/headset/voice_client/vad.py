"""Voice-activity gate, pure: the same rule as the phone client's ``clients/web/js/vad.js``.

Fed one 10 ms block at a time (its RMS level in dBFS, see :func:`rms_db`).

- A block is *voiced* when louder than ``max(threshold_db, noise floor + snr_db)``. The noise
  floor drops to any quieter block at once and creeps up 3 dB/s otherwise, so steady site noise
  stops counting as voice after a while.
- Attack: the gate opens *tentatively* on the first voiced block (the caller delays its audio by
  one block, so the first syllable is whole); the burst is *confirmed* once voiced blocks span
  ``attack_ms``. A tentative burst whose voiced run breaks (two quiet blocks) closes at once: a
  click sends a few tens of milliseconds, never a hangover's worth.
- Hangover: a confirmed burst closes ``hangover_ms`` after its last voiced block, so the ends of
  words and short pauses are not cut.
- Push-to-talk overrides: open while pressed, closed ``ptt_tail_ms`` after release.

No I/O, no asyncio: unit-tested, and compared with the JavaScript version in a browser.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from enum import Enum

__all__ = ["BLOCK_MS", "GateMode", "VadGate", "VadRules", "rms_db"]

BLOCK_MS = 10
_FLOOR_RISE_DB = 0.03  # per block: 3 dB/s
_SILENCE_DB = -100.0


class GateMode(Enum):
    HANDSFREE = "handsfree"  # voice-activated
    PTT = "ptt"  # push-to-talk
    OPEN = "open"  # always sending (tests, a talk-only feed)


@dataclass(frozen=True, slots=True)
class VadRules:
    threshold_db: float = -45.0
    snr_db: float = 10.0
    attack_ms: int = 30
    hangover_ms: int = 500
    ptt_tail_ms: int = 120

    def __post_init__(self) -> None:
        if not -100.0 <= self.threshold_db <= 0.0:
            raise ValueError("threshold_db must be within -100..0 dBFS")
        if self.attack_ms < 0 or self.hangover_ms < BLOCK_MS or self.ptt_tail_ms < 0:
            raise ValueError("attack_ms >= 0, hangover_ms >= 10, ptt_tail_ms >= 0")


def rms_db(pcm: bytes | array[int]) -> float:
    """RMS level of signed 16-bit mono samples in dBFS (full scale 32768); -100 for silence."""
    samples = pcm if isinstance(pcm, array) else array("h", pcm)
    n = len(samples)
    if n == 0:
        return _SILENCE_DB
    rms = math.sqrt(sum(x * x for x in samples) / n) / 32768.0
    return 20.0 * math.log10(rms) if rms > 1e-5 else _SILENCE_DB


class VadGate:
    """Decides, block by block, whether the microphone is sent."""

    __slots__ = (
        "confirmed",
        "floor_db",
        "forced",
        "last_voiced",
        "mode",
        "open",
        "ptt",
        "quiet_in_run",
        "released_at",
        "rules",
        "run_start",
        "t",
    )

    def __init__(self, rules: VadRules | None = None, mode: GateMode = GateMode.HANDSFREE) -> None:
        self.rules = rules or VadRules()
        self.mode = mode
        self.floor_db = -70.0
        self.open = mode is GateMode.OPEN
        self.confirmed = self.open
        self.ptt = False
        self.t = 0
        self.run_start = -1
        self.last_voiced = -1
        self.quiet_in_run = 0
        self.released_at = -1
        self.forced = False  # an open emergency: always open, whatever the level

    def set_mode(self, mode: GateMode) -> None:
        self.mode = mode
        self._close()
        if mode is GateMode.OPEN:
            self.open = self.confirmed = True

    def set_ptt(self, pressed: bool) -> None:
        if pressed and not self.ptt:
            self.released_at = -1
        if not pressed and self.ptt:
            self.released_at = self.t
        self.ptt = pressed

    def feed(self, level_db: float) -> bool:
        """One 10 ms block at ``level_db``; True when the gate opened or closed."""
        r = self.rules
        self.t += BLOCK_MS
        before = self.open
        voiced = level_db > max(r.threshold_db, self.floor_db + r.snr_db)
        if level_db < self.floor_db:
            self.floor_db = level_db
        else:
            self.floor_db = min(self.floor_db + _FLOOR_RISE_DB, level_db)

        if self.mode is GateMode.OPEN:
            return False
        if self.forced:
            self.open = self.confirmed = True
            return self.open != before
        if self.mode is GateMode.PTT:
            if self.ptt:
                self.open = self.confirmed = True
            elif self.open and self.t - self.released_at >= r.ptt_tail_ms:
                self._close()
            return self.open != before

        if voiced:
            if self.run_start < 0:
                self.run_start = self.t
            self.last_voiced = self.t
            self.quiet_in_run = 0
            self.open = True
            if not self.confirmed and self.t - self.run_start + BLOCK_MS >= r.attack_ms:
                self.confirmed = True
        elif self.open:
            if self.confirmed:
                if self.t - self.last_voiced >= r.hangover_ms:
                    self._close()
            else:
                self.quiet_in_run += 1
                if self.quiet_in_run >= 2:
                    self._close()
        return self.open != before

    def _close(self) -> None:
        self.open = False
        self.confirmed = False
        self.run_start = -1
        self.quiet_in_run = 0
