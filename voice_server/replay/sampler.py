"""The presence sampler: every :data:`~voice_server.replay.presence.SAMPLE_MS` it records which
users have connected media in which channel (a task on the event loop, owned and cancelled by the
app's lifespan; one pass over the sessions, nothing per packet)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from voice_server.metrics import Family
from voice_server.periodic import Periodic
from voice_server.replay.presence import PresenceLog

__all__ = ["PresenceSampler"]


class PresenceSampler(Periodic):
    def __init__(
        self, presence: PresenceLog, connected: Callable[[], Iterable[tuple[str, str]]]
    ) -> None:
        super().__init__("presence", presence.period_ms / 1000, self.sample)
        self.presence = presence
        self._connected = connected  # (channel, user) of every session with connected media

    async def sample(self) -> None:
        self.presence.sample(time.time_ns() // 1_000_000, list(self._connected()))

    def families(self) -> list[Family]:
        return [
            Family(
                "voice_replay_presence_dropped_total",
                "counter",
                "Presence intervals dropped (a user/channel pair over its bound)",
            ).add(self.presence.dropped)
        ]
