"""Emergencies over signaling: ``emergency {"action": "raise" | "cancel"}`` and the
``emergency_update`` every session of the channel receives.

On a raise the alert is stored first (``EmergencySink``: the alert store, once per user while
open, else ``emergency_open``); then, for ``window_s`` (configurable, 10 s by default), the raiser
holds a level-3 slot in the channel whatever the audio level (``Route.hold``): a listen-only
member talks too, the burst is logged as ``kind=emergency`` and pre-empts every lower level. The
window ends early when the emergency is cancelled or resolved. Changes made elsewhere (a
supervisor acknowledging in the dashboard, a cancel over REST) arrive through :meth:`on_alert`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from voice_server.media.route import Route
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.messages import ClientEmergency, ServerEmergencyUpdate, ServerMessage
from voice_server.signaling.sessions import Session, SessionRegistry
from voice_server.talk.priority import Level

__all__ = ["EmergencyChange", "EmergencyDesk", "EmergencySink"]

log = logging.getLogger(__name__)


class EmergencySink(Protocol):
    """Where emergencies are kept (the alert store): blocking-free coroutines."""

    async def raise_emergency(
        self, sub: str, name: str, channel: str, location: Mapping[str, Any] | None, via: str
    ) -> str | None:
        """The new alert's id; None when ``sub`` already has an open emergency."""
        ...

    async def cancel_emergency(self, sub: str, name: str, role: str) -> str | None:
        """Cancel ``sub``'s own open emergency (resolved as a false alarm); its id, or None."""
        ...


class _Media(Protocol):
    def has_transport(self, session_id: str) -> bool: ...

    def set_route(self, session_id: str, route: Route) -> Any: ...


class _Hub(Protocol):
    """What the desk uses of ``signaling.hub.Hub``."""

    registry: SessionRegistry
    holds: dict[str, Route]

    @property
    def media(self) -> _Media | None: ...

    def route(self, session: Session) -> Route: ...

    def reoffer(self, session: Session, reoffer: Any) -> None: ...

    def to_hearers(self, channel: str, message: ServerMessage) -> None: ...


@dataclass(frozen=True, slots=True)
class EmergencyChange:
    """An emergency alert as the desk needs it (from the alert feed)."""

    id: str
    channel: str
    state: str
    by: str
    subject: str
    resolution: str = ""


class EmergencyDesk:
    def __init__(self, hub: _Hub, sink: EmergencySink | None, window_s: float) -> None:
        self.hub = hub
        self.sink = sink
        self.window_s = window_s
        self.raised = 0
        self._timers: dict[str, asyncio.TimerHandle] = {}  # session id -> the window's end
        self._alert_of: dict[str, str] = {}  # session id -> its open emergency's alert id

    # ------------------------------------------------------------------ messages
    async def handle(self, session: Session, msg: ClientEmergency) -> None:
        if self.sink is None:
            raise ProtocolError(
                ErrorCode.EMERGENCY_UNAVAILABLE, "this server keeps no alerts", request_id=msg.id
            )
        if msg.action == "raise":
            location = msg.location.model_dump(exclude_none=True) if msg.location else None
            alert_id = await self.sink.raise_emergency(
                session.sub, session.name, session.channel, location, "signaling"
            )
            if alert_id is None:
                raise ProtocolError(
                    ErrorCode.EMERGENCY_OPEN,
                    "your emergency is still open: cancel it or wait for a supervisor",
                    request_id=msg.id,
                )
            self.raised += 1
            self.hold(session, alert_id)
            self._announce(
                session.channel,
                ServerEmergencyUpdate(
                    id=alert_id,
                    state="raised",
                    by=session.sub,
                    subject=session.sub,
                    window_s=self.window_s,
                    request_id=msg.id,
                ),
            )
            return
        cancelled = await self.sink.cancel_emergency(
            session.sub, session.name, session.principal.role.value
        )
        if cancelled is None:
            raise ProtocolError(
                ErrorCode.EMERGENCY_NONE, "you have no open emergency", request_id=msg.id
            )
        self.release(session.id)

    # ------------------------------------------------------------------ the open window
    def hold(self, session: Session, alert_id: str) -> None:
        """Hold a level-3 slot for ``session`` in its channel for the window."""
        hub = self.hub
        ch = session.channel
        current = hub.route(session)
        hears = current.hears if ch in current.hears else (*current.hears, ch)
        hub.holds[session.id] = Route((ch,), hears, priority=int(Level.EMERGENCY), hold=True)
        self._alert_of[session.id] = alert_id
        self._apply(session)
        old = self._timers.pop(session.id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[session.id] = loop.call_later(self.window_s, self.release, session.id)
        log.warning(
            "emergency raised",
            extra={"alert": alert_id, "sub": session.sub, "channel": ch, "session": session.id},
        )

    def hold_user(self, sub: str, channel: str, alert_id: str) -> bool:
        """An emergency raised elsewhere (REST): hold the window for the user's session in
        ``channel``, if they have one. Whether one was found."""
        for session in self.hub.registry.in_channel(channel):
            if session.sub == sub:
                self.hold(session, alert_id)
                return True
        return False

    def release(self, session_id: str) -> None:
        """The window is over (elapsed, cancelled, resolved, session gone)."""
        timer = self._timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()
        self._alert_of.pop(session_id, None)
        if self.hub.holds.pop(session_id, None) is None:
            return
        session = self.hub.registry.get(session_id)
        if session is not None:
            self._apply(session)

    def _apply(self, session: Session) -> None:
        media = self.hub.media
        if media is not None and media.has_transport(session.id):
            self.hub.reoffer(session, media.set_route(session.id, self.hub.route(session)))

    def holding(self, session_id: str) -> bool:
        return session_id in self.hub.holds

    # ------------------------------------------------------------------ changes from elsewhere
    def on_alert(self, change: EmergencyChange) -> None:
        """An emergency changed anywhere (the alert feed, on the event loop)."""
        if change.state == "raised":
            return  # told by whoever raised it (a raise over REST announces itself)
        self._announce(
            change.channel,
            ServerEmergencyUpdate(
                id=change.id,
                state=change.state,
                by=change.by,
                subject=change.subject,
                resolution=change.resolution or None,
            ),
        )
        if change.state == "resolved":
            for sid, alert_id in list(self._alert_of.items()):
                if alert_id == change.id:
                    self.release(sid)

    def announce_raised(self, alert_id: str, channel: str, sub: str) -> None:
        self._announce(
            channel,
            ServerEmergencyUpdate(
                id=alert_id, state="raised", by=sub, subject=sub, window_s=self.window_s
            ),
        )

    def _announce(self, channel: str, message: ServerEmergencyUpdate) -> None:
        self.hub.to_hearers(channel, message)
