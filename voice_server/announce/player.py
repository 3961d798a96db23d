"""Plays an announcement's clip into one channel as a server-side source (event loop).

A routine announcement (level 1) waits up to :data:`SLOT_WAIT_SECONDS` for a free slot; an urgent
one (level 2) starts at once and cuts in on a level-1 holder (the router's pre-emption). Should
it find no slot after all (every slot held by level 2, or a talker took the last free slot
first), it stops, waits for a free one and starts again, within the same deadline. While it
plays, who has connected media in the channel is sampled for "who heard it".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from voice_server.announce.heard import SAMPLE_SECONDS, Tally
from voice_server.announce.speech import Clip
from voice_server.media.route import Route
from voice_server.media.source import ServerSource

__all__ = ["Outcome", "Stage", "play"]

SLOT_WAIT_SECONDS = 30.0
FRAME_SECONDS = 0.02
CHECK_FRAMES = 8  # after this many frames (past the talk detector's attack) it must hold a slot
POLL_SECONDS = 0.05


class Stage(Protocol):
    """What the player needs of the media plane and the signaling hub."""

    def attach_source(
        self, source_id: str, route: Route, *, logged: bool = True
    ) -> ServerSource: ...

    def detach_source(self, source_id: str) -> None: ...

    def slot_free(self, channel: str) -> bool: ...

    def holds_slot(self, session_id: str, channel: str) -> bool: ...

    def listening(self, channel: str) -> set[str]:
        """The users with connected media in ``channel`` now."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    channel: str
    status: str  # played | slot_timeout
    start_ms: int | None = None
    end_ms: int | None = None
    tally: Tally | None = None


async def play(
    stage: Stage,
    source_id: str,
    channel: str,
    clip: Clip,
    *,
    level: int,
    urgent: bool,
    wait_seconds: float = SLOT_WAIT_SECONDS,
    on_start: Callable[[int], None] | None = None,
) -> Outcome:
    deadline = time.monotonic() + wait_seconds
    first = urgent
    while True:
        if not first:
            while not stage.slot_free(channel):
                if time.monotonic() >= deadline:
                    return Outcome(channel, "slot_timeout")
                await asyncio.sleep(POLL_SECONDS)
        first = False
        result = await _attempt(stage, source_id, channel, clip, level, on_start)
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            return Outcome(channel, "slot_timeout")


async def _attempt(
    stage: Stage,
    source_id: str,
    channel: str,
    clip: Clip,
    level: int,
    on_start: Callable[[int], None] | None,
) -> Outcome | None:
    """One go: None when it found no slot (nothing was heard, nothing was told)."""
    source = stage.attach_source(source_id, Route((channel,), (), priority=level), logged=False)
    tally = Tally()
    start_ms = time.time_ns() // 1_000_000
    try:
        t = time.perf_counter()
        next_sample = t
        for k, (frame, lvl) in enumerate(zip(clip.frames, clip.levels, strict=True)):
            source.send(frame, level=lvl)
            if k == CHECK_FRAMES:
                if not stage.holds_slot(source_id, channel):
                    return None
                if on_start is not None:
                    on_start(start_ms)
            now = time.perf_counter()
            if now >= next_sample:
                tally.sample(stage.listening(channel))
                next_sample += SAMPLE_SECONDS
            t += FRAME_SECONDS
            await asyncio.sleep(max(0.0, t - time.perf_counter()))
    finally:
        stage.detach_source(source_id)
    return Outcome(channel, "played", start_ms, time.time_ns() // 1_000_000, tally)
