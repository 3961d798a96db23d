"""The server's view of transcription: watches the link, the supervised sidecar and the spool,
says which :class:`~voice_server.transcribe.status.TranscriptionState` holds, logs each change
once with its reason, and exports it to ``/metrics``.

The spool is looked at every :data:`POLL_SECONDS` in a thread (a directory listing: the spool
holds one file per ended burst not yet transcribed); readers (``/readyz``, pages, metrics) take
the last verdict and never wait on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Protocol

from voice_server.calllog.burst import DONE, PART, SPOOL_DIR
from voice_server.metrics import Family
from voice_server.transcribe.status import (
    Observed,
    TranscriptionState,
    Verdict,
    judge,
)

__all__ = ["POLL_SECONDS", "TranscriptionMonitor"]

log = logging.getLogger(__name__)
POLL_SECONDS = 2.0
START_GRACE_SECONDS = 30.0


class _Link(Protocol):
    @property
    def connected(self) -> bool: ...


class _LinkCounts(Protocol):
    auth_failures: int
    disconnects: int


class _Supervised(Protocol):
    @property
    def running(self) -> bool: ...

    restarts: int


class TranscriptionMonitor:
    def __init__(
        self,
        data_dir: Path,
        link: _Link,
        link_counts: _LinkCounts,
        *,
        call_log: bool = True,
        supervisor: _Supervised | None = None,
    ) -> None:
        self.spool = data_dir / SPOOL_DIR
        self.link = link
        self.link_counts = link_counts
        self.call_log = call_log
        self.supervisor = supervisor
        self._pending: dict[str, float] = {}  # spool file -> its mtime (wall clock)
        self._progress_at: float | None = None  # monotonic: a spool file was taken out
        self._started = time.monotonic()
        self._scanned = False
        self._verdict: Verdict | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ reading
    def verdict(self) -> Verdict:
        """The state now (the link's state is read live; the spool's as last scanned)."""
        now = time.monotonic()
        wall = time.time()
        oldest = min(self._pending.values(), default=None)
        since_start = now - self._started
        seen = Observed(
            call_log=self.call_log,
            link_up=self.link.connected,
            sidecar_running=self.supervisor.running if self.supervisor is not None else None,
            oldest_pending_s=max(0.0, wall - oldest) if oldest is not None else None,
            since_progress_s=(now - self._progress_at) if self._progress_at else since_start,
        )
        return judge(seen)

    @property
    def state(self) -> TranscriptionState:
        return self.verdict().state

    # ------------------------------------------------------------------ watching
    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="transcription-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            try:
                pending = await asyncio.to_thread(self._scan)
                self._note_scan(pending)
                self.check()
            except Exception:  # the monitor must not die; say why once per occurrence
                log.exception("transcription monitor failed")
            await asyncio.sleep(POLL_SECONDS)

    def _scan(self) -> dict[str, float]:
        pending: dict[str, float] = {}
        with contextlib.suppress(FileNotFoundError), os.scandir(self.spool) as it:
            for entry in it:
                if entry.name.endswith(DONE) and not entry.name.endswith(PART):
                    with contextlib.suppress(OSError):
                        pending[entry.name] = entry.stat().st_mtime
        return pending

    def _note_scan(self, pending: dict[str, float]) -> None:
        if self._scanned and any(name not in pending for name in self._pending):
            self._progress_at = time.monotonic()
        self._pending = pending
        self._scanned = True

    def check(self) -> Verdict:
        """Compute the verdict and log it when the state changed (once, with the reason)."""
        verdict = self.verdict()
        previous = self._verdict
        starting = time.monotonic() - self._started < START_GRACE_SECONDS
        if previous is None and verdict.state is TranscriptionState.DEGRADED and starting:
            return verdict  # a sidecar takes a few seconds to load its model: not news yet
        if previous is None or previous.state != verdict.state:
            if verdict.state is TranscriptionState.UP:
                log.info("transcription up: %s", verdict.reason)
            elif previous is not None or verdict.state is not TranscriptionState.OFF:
                log.warning(
                    "transcription %s: %s",
                    verdict.state.value,
                    verdict.reason,
                    extra={"state": verdict.state.value, "reason": verdict.reason},
                )
        self._verdict = verdict
        return verdict

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        state = self.verdict().state
        up = Family(
            "voice_transcription_link_up", "gauge", "A transcriber sidecar is linked (live path)"
        ).add(1 if self.link.connected else 0)
        states = Family(
            "voice_transcription_state", "gauge", "Transcription state (1 for the current one)"
        )
        for s in TranscriptionState:
            states.add(1 if s is state else 0, state=s.value)
        errors = Family(
            "voice_transcription_link_errors_total",
            "counter",
            "Transcriber link failures seen by the server, by reason",
        )
        errors.add(self.link_counts.auth_failures, reason="auth_failed")
        errors.add(self.link_counts.disconnects, reason="disconnected")
        errors.add(self.supervisor.restarts if self.supervisor else 0, reason="sidecar_exited")
        return [up, states, errors]
