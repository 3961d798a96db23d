"""One pacing task for every simulated participant of a process (no coroutine per packet).

The pacer wakes every ``20 ms / phases`` on an absolute schedule (no drift) and calls
``on_frame(frame, now_ns, late)`` on the participants of the current phase, so a process with
hundreds of talkers spreads its sends over the 20 ms period instead of bursting them. A wake-up
that comes more than ``late_after`` seconds after its due time marks that tick's sends late; if
the process falls behind by whole ticks they are run back to back (the send rate is kept, the
lateness counted) rather than skipped. Callbacks in ``after_tick`` run after each tick's sends
(the group reads its sockets there).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol

from voice_server.histogram import LatencyHistogram

__all__ = ["FRAME_SECONDS", "Paced", "Pacer"]

FRAME_SECONDS = 0.02


class Paced(Protocol):
    def on_frame(self, frame: int, now_ns: int, late: bool) -> None: ...


class Pacer:
    """Calls ``on_frame`` of each member once per 20 ms frame, members split into phases."""

    def __init__(self, *, phases: int = 4, late_after: float = 0.01) -> None:
        if phases < 1:
            raise ValueError("phases must be >= 1")
        self.phases = phases
        self.late_after = late_after
        self._members: list[list[Paced]] = [[] for _ in range(phases)]
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self.ticks = 0
        self.late_ticks = 0
        #: how late each tick ran, µs
        self.lateness = LatencyHistogram()
        self.after_tick: list[Callable[[], None]] = []

    def add(self, member: Paced, phase: int | None = None) -> None:
        """Pace ``member`` on ``phase`` (``0 … phases - 1``), or on the next one in turn."""
        k = self._count % self.phases if phase is None else phase % self.phases
        self._members[k].append(member)
        self._count += 1

    def remove(self, member: Paced) -> None:
        for group in self._members:
            if member in group:
                group.remove(member)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sim-pacer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = FRAME_SECONDS / self.phases
        start = loop.time()
        tick = 0
        perf_ns = time.perf_counter_ns
        while True:
            due = start + tick * period
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - due
            late = lag > self.late_after
            self.ticks += 1
            self.lateness.observe_us(int(lag * 1e6))
            if late:
                self.late_ticks += 1
            frame, phase = divmod(tick, self.phases)
            now_ns = perf_ns()
            for member in self._members[phase]:
                member.on_frame(frame, now_ns, late)
            for callback in self.after_tick:
                callback()
            tick += 1
