"""The headset client's emergency control: key presses or a held button through
:class:`~voice_client.emergency.EmergencyTrigger`, the countdown ticker, the raise message, and
the open window during which the microphone is sent whatever the gate says (the server holds a
level-3 slot for us meanwhile). Events: ``emergency_countdown`` {seconds},
``emergency_cancelled``, ``emergency_sent``, ``emergency_window`` {seconds}."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from voice_client.emergency import EmergencyTrigger
from voice_client.vad import VadGate

__all__ = ["EmergencyControl"]

TICK_S = 0.1


class EmergencyControl:
    def __init__(
        self,
        vad: VadGate,
        emit: Callable[[dict[str, Any]], None],
        send_raise: Callable[[], Awaitable[None]],
        trigger: EmergencyTrigger | None = None,
    ) -> None:
        self.vad = vad
        self.emit = emit
        self.send_raise = send_raise
        self.trigger = trigger or EmergencyTrigger()
        self._window: asyncio.TimerHandle | None = None

    def _said(self, what: str | None) -> None:
        if what == "countdown":
            self.emit({"event": "emergency_countdown", "seconds": self.trigger.countdown_s})
        elif what == "cancelled":
            self.emit({"event": "emergency_cancelled"})

    def press(self) -> None:
        """The emergency key was pressed (terminal)."""
        self._said(self.trigger.press(time.monotonic()))

    def hold(self, pressed: bool) -> None:
        """The emergency button went down or up (evdev)."""
        self._said(self.trigger.hold(pressed, time.monotonic()))

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            what = self.trigger.tick(time.monotonic())
            if what == "raise":
                await self.send_raise()
                self.emit({"event": "emergency_sent"})
            else:
                self._said(what)

    def window(self, seconds: float) -> None:
        """The server says our emergency is open for ``seconds`` (0: it is over)."""
        if self._window is not None:
            self._window.cancel()
            self._window = None
        self.vad.forced = seconds > 0
        self.emit({"event": "emergency_window", "seconds": seconds})
        if seconds > 0:
            self._window = asyncio.get_running_loop().call_later(seconds, self.window, 0.0)
