"""A local talker's silence, held back from its channels' owners on other workers (pure; README
"Several processes on one machine", the relay).

A participant who is not talking still sends packets: a phone's silent frames, a listener's DTX
frame every 400 ms. Relayed to a channel's owner, each wakes that process for nothing once the
owner's talk detector is idle: a silent packet of an idle detector with no voiced run in
progress changes nothing there but the member's pre-roll. :class:`QuietGate` holds such packets
back on the talker's own worker and sends the last ``lead_ms`` of them just before the next
voiced packet (the router's pre-roll lead, a soft first consonant).
"""

from __future__ import annotations

from collections import deque

from voice_server.media.errors import PacketError
from voice_server.media.rtp import audio_level

__all__ = ["LEAD_PACKETS", "QuietGate"]

LEAD_PACKETS = 4  # silent packets kept for a voiced run's lead (40 ms: 2 at 20 ms frames)


class QuietGate:
    """One local talker's packets to owners elsewhere: silence is held back once the owner's
    detector is surely idle (no voiced packet for ``quiet_ms``: past its hangover and any
    attack), so that a participant who is not talking (a listener's DTX frames, a phone's
    silent packets) costs the owner no wake-up. The packets of the last ``lead_ms`` are kept and
    sent just before the next voiced one (the router's pre-roll lead: a soft first consonant).
    What the owner's router does with a voiced run is unchanged: a silent packet of an idle,
    run-less detector changes nothing there but its pre-roll."""

    __slots__ = ("held", "last_voiced_ms", "lead_ms", "quiet_ms", "threshold")

    def __init__(self, threshold: int, quiet_ms: int, lead_ms: int, now_ms: int) -> None:
        self.threshold = threshold
        self.quiet_ms = quiet_ms
        self.lead_ms = lead_ms
        # as if voiced now: a talker re-wrapped mid-burst (a route change) is not held back
        # before the owner's detector can have ended its burst
        self.last_voiced_ms = now_ms
        self.held: deque[tuple[bytes, int]] = deque(maxlen=LEAD_PACKETS)

    def admit(self, plain: bytes, ext_id: int, hold: bool, now_ms: int) -> bool:
        """False: hold ``plain`` back (silence while quiet). True: send it, after
        :meth:`lead` when that returns packets."""
        try:
            level = audio_level(plain, ext_id)
        except PacketError:
            return True  # the owner counts it
        if hold or level is None or level[1] <= self.threshold:
            self.last_voiced_ms = now_ms
            return True
        if now_ms - self.last_voiced_ms <= self.quiet_ms:
            return True
        self.held.append((plain, now_ms))
        return False

    def lead(self, now_ms: int) -> list[bytes]:
        """The held packets of the last ``lead_ms`` (to send before a voiced one), oldest first."""
        if not self.held:
            return []
        out = [p for p, t in self.held if now_ms - t <= self.lead_ms]
        self.held.clear()
        return out
