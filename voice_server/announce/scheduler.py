"""The scheduler: fires scheduled announcements when they are due (a task on the event loop,
owned by the app's lifespan; database work in worker threads).

Every :data:`POLL_SECONDS` it reads the active schedules whose ``next_ms`` has come, claims each
fire in the database (one winner per deployment), moves the schedule on to its next fire, and
plays the winner's through the announcer; a fire found more than 5 minutes late is recorded
``missed`` and not played. The clock is injected (tests drive :meth:`Scheduler.tick` with a fake
one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from voice_server.announce.request import AnnounceRequest
from voice_server.announce.schedule import due, next_fire
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.announce.store import Announcement
from voice_server.metrics import Family
from voice_server.periodic import Periodic
from voice_server.store.job_lock import JobLocks, LocalJobLocks

__all__ = ["POLL_SECONDS", "Scheduler"]

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
JOB = "announcement-scheduler"
#: plays a request for its author: (author sub, author name, request) -> the announcement
FireFn = Callable[[str, str, AnnounceRequest], Awaitable[Announcement]]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Scheduler(Periodic):
    def __init__(
        self,
        store: ScheduleStore,
        fire: FireFn,
        clock: Callable[[], int] = _wall_ms,
        locks: JobLocks | None = None,
    ) -> None:
        super().__init__(JOB, POLL_SECONDS, self.tick)
        self.store = store
        self.locks = locks or LocalJobLocks()
        self._fire = fire
        self.clock = clock
        self.fired = 0
        self.missed = 0
        self.failed = 0

    async def tick(self) -> list[tuple[str, int, str]]:
        """One pass: ``(schedule id, due ms, fired|missed)`` of the fires this process won. The
        due fires are claimed first, all in one step of the job lock (one node at a time on
        PostgreSQL), and played after it, outside the lock."""
        now = self.clock()
        done: list[tuple[str, int, str]] = []
        for s, verdict in await asyncio.to_thread(self.claim_due, now):
            assert s.next_ms is not None
            if verdict == "missed":
                self.missed += 1
                log.warning(
                    "scheduled announcement missed",
                    extra={"schedule": s.id, "late_ms": now - s.next_ms},
                )
                done.append((s.id, s.next_ms, "missed"))
                continue
            await self._play(s, s.next_ms)
            done.append((s.id, s.next_ms, "fired"))
        return done

    def claim_due(self, now: int) -> list[tuple[Scheduled, str]]:
        """Blocking: claim each due fire (one winner per fire, also in the database), move its
        schedule on; the fires won, with ``fire`` or ``missed``."""
        won: list[tuple[Scheduled, str]] = []
        with self.locks.step(JOB) as held:
            if not held:
                return won  # another node claims them now
            for s in self.store.due(now):
                assert s.next_ms is not None
                verdict = due(s.next_ms, now)
                if verdict == "wait":
                    continue
                status = "firing" if verdict == "fire" else "missed"
                claimed = self.store.claim(s.id, s.next_ms, status, now)
                following = next_fire(s.schedule, max(s.next_ms, now))
                self.store.advance(s.id, s.next_ms, following, now)
                if claimed:  # else another process has it
                    won.append((s, verdict))
        return won

    async def _play(self, s: Scheduled, due_ms: int) -> None:
        try:
            a = await self._fire(s.author, s.author_name, s.request)
        except Exception as exc:
            self.failed += 1
            message = getattr(exc, "message", type(exc).__name__)
            log.warning("scheduled announcement failed", extra={"schedule": s.id, "error": message})
            await asyncio.to_thread(self.store.finish_fire, s.id, due_ms, "failed", None, message)
            return
        self.fired += 1
        await asyncio.to_thread(self.store.finish_fire, s.id, due_ms, "played", a.id)

    def families(self) -> list[Family]:
        fam = Family(
            "voice_announcement_schedule_fires_total",
            "counter",
            "Scheduled announcement fires this process won, by result",
        )
        fam.add(self.fired, result="played").add(self.missed, result="missed")
        return [fam.add(self.failed, result="failed")]
