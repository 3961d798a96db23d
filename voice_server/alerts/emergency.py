"""Emergencies in the alert store: raise one (once per user while it is open), cancel one's own
(resolved as a false alarm by the raiser), escalate the unacknowledged, and the desk's view of a
change. ``signaling.emergency`` calls :class:`EmergencyAlerts` (its ``EmergencySink``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from voice_server.alerts import model
from voice_server.alerts.model import Alert, AlertError, AlertKind, AlertState, Resolution
from voice_server.alerts.service import AlertService, Handler
from voice_server.alerts.store import AlertFilter
from voice_server.store.job_lock import JobLocks, LocalJobLocks

__all__ = ["CANCEL_NOTE", "EmergencyAlerts", "emergency_alert", "open_emergency"]

log = logging.getLogger(__name__)
CANCEL_NOTE = "cancelled by the raiser"
ESCALATE_CHECK_SECONDS = 1.0
ESCALATE_JOB = "emergency-escalate"  # its job lock (store/job_lock.py)


def dedupe_of(sub: str) -> str:
    return f"emergency:{sub}"


def emergency_alert(
    sub: str,
    name: str,
    channel: str,
    location: Mapping[str, Any] | None,
    via: str,
    now_ms: int,
) -> Alert:
    detail: dict[str, Any] = {"via": via}
    if location:
        detail["location"] = dict(location)
    return Alert(
        id=model.new_alert_id(now_ms),
        kind=AlertKind.EMERGENCY,
        channel=channel,
        state=AlertState.RAISED,
        raised_ms=now_ms,
        raised_by=sub,
        subject=sub,
        subject_name=name,
        detail=detail,
        dedupe=dedupe_of(sub),
        updated_ms=now_ms,
    )


def open_emergency(service: AlertService, sub: str) -> Alert | None:
    return service.store.by_dedupe(dedupe_of(sub))


class EmergencyAlerts:
    """The alert side of emergencies (blocking store work in worker threads)."""

    def __init__(self, service: AlertService, escalate_after_s: float) -> None:
        self.service = service
        self.escalate_after_s = escalate_after_s
        self.locks: JobLocks = LocalJobLocks()  # PostgreSQL: one node escalates at a time
        self._task: asyncio.Task[None] | None = None

    def raise_now(
        self,
        sub: str,
        name: str,
        channel: str,
        location: Mapping[str, Any] | None,
        via: str,
        address: str = "",
    ) -> Alert | None:
        """Blocking: the new alert, or None when ``sub`` has one open."""
        alert = emergency_alert(sub, name, channel, location, via, int(time.time() * 1000))
        return self.service.raise_alert(alert, Handler(sub, name, "", address))

    async def raise_emergency(
        self, sub: str, name: str, channel: str, location: Mapping[str, Any] | None, via: str
    ) -> str | None:
        alert = await asyncio.to_thread(self.raise_now, sub, name, channel, location, via)
        return alert.id if alert is not None else None

    def cancel_now(self, sub: str, name: str, role: str, address: str = "") -> Alert | None:
        """Blocking: resolve ``sub``'s own open emergency as a false alarm; None if none."""
        found = open_emergency(self.service, sub)
        if found is None:
            return None
        try:
            return self.service.resolve(
                found.id, Handler(sub, name, role, address), Resolution.FALSE_ALARM, CANCEL_NOTE
            )
        except AlertError:
            return None  # resolved meanwhile

    async def cancel_emergency(self, sub: str, name: str, role: str) -> str | None:
        alert = await asyncio.to_thread(self.cancel_now, sub, name, role)
        return alert.id if alert is not None else None

    # ------------------------------------------------------------------ escalation
    def start(self) -> None:
        self._task = asyncio.create_task(self._escalate_forever(), name="emergency-escalate")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _escalate_forever(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.escalate_due)
            except Exception:
                log.exception("emergency escalation failed")
            await asyncio.sleep(ESCALATE_CHECK_SECONDS)

    def escalate_due(self, now_ms: int | None = None) -> list[Alert]:
        """Escalate raised, unacknowledged emergencies older than the limit (each once in the
        deployment: the store's compare-and-set refuses a second escalation; on PostgreSQL one
        node at a time looks, under the job lock: skipped, nothing)."""
        with self.locks.step(ESCALATE_JOB) as held:
            return self._escalate_due(now_ms) if held else []

    def _escalate_due(self, now_ms: int | None) -> list[Alert]:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        due = self.service.store.find(
            AlertFilter(
                kind=AlertKind.EMERGENCY,
                state=AlertState.RAISED,
                until_ms=now - int(self.escalate_after_s * 1000) + 1,
                limit=100,
            )
        )
        out = []
        for alert in due:
            if alert.escalated:
                continue
            with contextlib.suppress(AlertError):
                out.append(self.service.escalate(alert.id))
                log.warning(
                    "emergency escalated to every supervisor and admin",
                    extra={"alert": alert.id, "channel": alert.channel},
                )
        return out
