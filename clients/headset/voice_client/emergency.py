"""The headset client's emergency trigger [pure]: when a press or a hold becomes an emergency.

- A terminal key (``--emergency-key``): terminals report presses, never releases, so two
  presses within :data:`PRESSES_WITHIN_S` arm it.
- A button through evdev (``--emergency-device``): real press and release, so holding it for
  :data:`HOLD_S` arms it.

Armed, a countdown of :data:`COUNTDOWN_S` runs (the client says so); any press during the
countdown cancels it and nothing is raised. When it runs out, :meth:`EmergencyTrigger.tick`
says ``raise`` once. Times are seconds on one monotonic clock.
"""

from __future__ import annotations

__all__ = ["COUNTDOWN_S", "HOLD_S", "PRESSES_WITHIN_S", "EmergencyTrigger"]

PRESSES_WITHIN_S = 3.0
COUNTDOWN_S = 5.0
HOLD_S = 2.0


class EmergencyTrigger:
    def __init__(
        self,
        *,
        presses_within_s: float = PRESSES_WITHIN_S,
        countdown_s: float = COUNTDOWN_S,
        hold_s: float = HOLD_S,
    ) -> None:
        self.presses_within_s = presses_within_s
        self.countdown_s = countdown_s
        self.hold_s = hold_s
        self._presses: list[float] = []
        self._held_since: float | None = None
        self.deadline: float | None = None  # the countdown's end while it runs

    @property
    def counting(self) -> bool:
        return self.deadline is not None

    def press(self, now: float) -> str | None:
        """A terminal key press: ``countdown`` (armed), ``cancelled`` or None."""
        if self.deadline is not None:
            self.deadline = None
            self._presses.clear()
            return "cancelled"
        self._presses = [t for t in self._presses if now - t <= self.presses_within_s]
        self._presses.append(now)
        if len(self._presses) >= 2:
            self._presses.clear()
            self.deadline = now + self.countdown_s
            return "countdown"
        return None

    def hold(self, pressed: bool, now: float) -> str | None:
        """An evdev button went down or up: ``cancelled`` when it went down during a
        countdown; the hold itself arms in :meth:`tick`."""
        if pressed and self.deadline is not None:
            self.deadline = None
            self._held_since = None
            return "cancelled"
        self._held_since = now if pressed else None
        return None

    def tick(self, now: float) -> str | None:
        """Call often (every 100 ms): ``countdown`` when a hold arms it, ``raise`` when the
        countdown ran out, else None."""
        if self._held_since is not None and now - self._held_since >= self.hold_s:
            self._held_since = None
            self.deadline = now + self.countdown_s
            return "countdown"
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            return "raise"
        return None
