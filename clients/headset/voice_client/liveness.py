"""When the headset client pings the server and when it calls the signaling link dead [pure].

The same figures as the phone app (``clients/web/js/connection.js``): while joined, a ``ping``
every :data:`PING_INTERVAL` seconds (the server answers ``pong`` at once, ahead of any slow
work); any message from the server counts as life, and :data:`SILENCE_LIMIT` seconds without one
means the link is dead: the socket is dropped and the reconnect path joins again with the same
session id. A frozen or unplugged server is noticed within :data:`SILENCE_LIMIT` seconds of its
last message; before, the WebSocket library's own keepalive took 20 + 20 s.

The time the client itself spends handling a message (answering an offer can take a while) is
not silence of the server: the clock is held while it is busy. Nor is silence that was never
asked about: the link is dead only once a ping has also gone unanswered for
``SILENCE_LIMIT - PING_INTERVAL`` seconds. Normally that is the same moment (the first ping after
the server's last message leaves within PING_INTERVAL), but a watch that wakes up late (a
stalled loop, a suspended process) pings first instead of dropping a live link. The caller
passes the clock (``time.monotonic()``), so every rule is a unit test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PING_INTERVAL", "SILENCE_LIMIT", "Beat", "Liveness"]

#: seconds between two pings while joined
PING_INTERVAL = 2.0
#: seconds without any message from the server after which the link is dead (while joined)
SILENCE_LIMIT = 5.0


@dataclass(frozen=True, slots=True)
class Beat:
    """What to do now: send a ``ping``, give the connection up (``dead``), and when to look
    again (``wake_at``, on the caller's clock)."""

    ping: bool
    dead: bool
    wake_at: float


@dataclass(slots=True)
class Liveness:
    """One connection's heartbeat: call :meth:`heard` when a message arrives, :meth:`handled`
    once it has been dealt with, and :meth:`beat` whenever :attr:`Beat.wake_at` comes."""

    last_heard: float
    next_ping: float
    busy: bool = False
    #: when the first ping since the server's last message left (None: none yet)
    unanswered: float | None = None

    @classmethod
    def opened(cls, now: float) -> Liveness:
        """A connection opened at ``now``."""
        return cls(last_heard=now, next_ping=now + PING_INTERVAL)

    def heard(self, now: float) -> None:
        """A message from the server arrived; the client is handling it from now on."""
        self.last_heard = now
        self.busy = True
        self.unanswered = None

    def handled(self, now: float) -> None:
        """The client has dealt with the message: the silence counts from here."""
        self.last_heard = now
        self.busy = False

    def silent_for(self, now: float) -> float:
        """Seconds the server has been silent (0 while a message is being handled)."""
        return 0.0 if self.busy else max(0.0, now - self.last_heard)

    def deadline(self) -> float:
        """When the link is dead if nothing comes (inf: not before a ping has left)."""
        if self.busy or self.unanswered is None:
            return math.inf
        return max(self.last_heard + SILENCE_LIMIT, self.unanswered + SILENCE_LIMIT - PING_INTERVAL)

    def beat(self, now: float, *, joined: bool) -> Beat:
        """The decision at ``now``: pings and the silence rule apply only while ``joined``
        (before that, the join and the socket's open timeout govern)."""
        if joined and now >= self.deadline():
            return Beat(ping=False, dead=True, wake_at=now)
        asked = self.unanswered is not None
        late = joined and not asked and self.silent_for(now) >= SILENCE_LIMIT  # ask at once
        due = now >= self.next_ping or late
        if due:
            self.next_ping = now + PING_INTERVAL
            if joined and self.unanswered is None:
                self.unanswered = now
        deadline = self.deadline() if joined else math.inf
        return Beat(ping=due and joined, dead=False, wake_at=min(self.next_ping, deadline))
