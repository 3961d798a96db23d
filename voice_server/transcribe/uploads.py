"""What follows an ended burst's fsync, off the spool writer's thread: its clip into the shared
store (PostgreSQL) and then its transcription job, retried about every second until both are
done.

The spool writer only hands the burst over (:meth:`Uploads.submit`, never blocking: a full queue
drops it, counted; the node's restart uploads and queues what its spool still holds). A
burst's job is queued only once its clip is in the shared store, so a worker on another node
never claims a burst whose audio it cannot read yet (which it would end as ``clip_missing``)
while this node still has the file and keeps trying.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from voice_server.calllog.burst import BurstMeta

__all__ = ["CAPACITY", "RETRY_SECONDS", "Upload", "Uploads"]

log = logging.getLogger(__name__)
CAPACITY = 10_000  # bursts waiting (a few hundred bytes each): hours of talk on a busy node
RETRY_SECONDS = 1.0


@dataclass(slots=True)
class Upload:
    meta: BurstMeta
    fsynced: float  # time.monotonic() when the file was on disk
    uploaded: bool = False  # the clip is in the shared store (or there is none)
    queued: bool = False  # the transcription job is queued (or there is no queue)
    tries: int = 0
    next_at: float = 0.0


class Uploads:
    """A bounded retry queue of ended bursts, worked by its own thread. ``handle`` does what is
    left of one burst and says whether it is done (False: again in :data:`RETRY_SECONDS`)."""

    def __init__(
        self,
        handle: Callable[[Upload], bool],
        capacity: int = CAPACITY,
        retry_s: float = RETRY_SECONDS,
    ) -> None:
        self._handle = handle
        self.capacity = capacity
        self.retry_s = retry_s
        self._new: deque[Upload] = deque()
        self._pending: list[Upload] = []  # the worker thread's own
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.drops = 0  # not taken: the queue was full
        self.retries = 0  # tries after a first failure
        self.waiting = 0  # gauge: submitted, not done

    def submit(self, meta: BurstMeta, fsynced: float | None = None) -> bool:
        """Hand a burst over (any thread, never blocks); False when the queue is full."""
        with self._lock:
            if self.waiting >= self.capacity:
                self.drops += 1
                return False
            self.waiting += 1
            self._new.append(Upload(meta, time.monotonic() if fsynced is None else fsynced))
        self._wake.set()
        return True

    def step(self, now: float | None = None) -> int:
        """Try every burst that is due once; how many are still waiting (the worker's thread,
        or a test's)."""
        with self._lock:
            self._pending.extend(self._new)
            self._new.clear()
        now = time.monotonic() if now is None else now
        left: list[Upload] = []
        for item in self._pending:
            if item.next_at > now:
                left.append(item)
                continue
            if item.tries:
                self.retries += 1
            item.tries += 1
            try:
                done = self._handle(item)
            except Exception:
                log.exception("spool upload failed", extra={"burst": item.meta.id})
                done = False
            if not done:
                item.next_at = now + self.retry_s
                left.append(item)
        self._pending = left
        with self._lock:
            self.waiting = len(self._pending) + len(self._new)
            return self.waiting

    def start(self) -> None:
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="spool-uploads", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """After one more try of what is waiting (what still fails is the restart's)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            self._wake.wait(self.retry_s if self._pending else None)
            self._wake.clear()
            if self._stop:
                now = time.monotonic() + self.retry_s  # everything due: one last try
                self.step(now)
                return
            self.step()
