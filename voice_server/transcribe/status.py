"""Whether transcription is working, from what the server can see of it (pure logic).

The states every page, ``/readyz`` and ``/metrics`` report (``checks.transcription``):

- ``up``: a transcriber is linked; live captions and live commits flow.
- ``degraded``: no transcriber is linked, but nothing says the call log is falling behind: the
  sidecar's spool catch-up still commits (about 10 s late), or there was nothing to commit.
- ``stopped``: the supervised sidecar is not running (it exited: a model that failed to load,
  a crash), or the spool has held an ended burst for :data:`STALL_SECONDS` while none was
  taken out of it: nothing is transcribing.
- ``off``: this server keeps no call log (``call_log = false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["STALL_SECONDS", "Observed", "TranscriptionState", "Verdict", "judge"]

STALL_SECONDS = 60.0


class TranscriptionState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    STOPPED = "stopped"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class Observed:
    call_log: bool  # the server records bursts at all
    link_up: bool  # a transcriber sidecar is linked now
    sidecar_running: bool | None  # the supervised child runs; None: not supervised here
    oldest_pending_s: float | None  # age of the oldest ended burst waiting in the spool
    since_progress_s: float | None  # since a burst was last taken out of the spool


@dataclass(frozen=True, slots=True)
class Verdict:
    state: TranscriptionState
    reason: str  # one line for the log and the banner (English; the pages translate the state)


def judge(seen: Observed) -> Verdict:
    if not seen.call_log:
        return Verdict(TranscriptionState.OFF, "the call log is off")
    if seen.link_up:
        return Verdict(TranscriptionState.UP, "transcriber linked")
    if seen.sidecar_running is False:
        return Verdict(TranscriptionState.STOPPED, "the transcriber is not running")
    stalled = (
        seen.oldest_pending_s is not None
        and seen.oldest_pending_s >= STALL_SECONDS
        and (seen.since_progress_s is None or seen.since_progress_s >= STALL_SECONDS)
    )
    if stalled:
        return Verdict(
            TranscriptionState.STOPPED,
            f"nothing transcribed for {STALL_SECONDS:.0f} s while the spool holds bursts",
        )
    return Verdict(
        TranscriptionState.DEGRADED,
        "no transcriber linked: no live captions; bursts are transcribed from the spool",
    )
