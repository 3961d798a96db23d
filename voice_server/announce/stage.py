"""The player's :class:`~voice_server.announce.player.Stage` over the media plane and the
signaling hub's sessions (wired in ``app.build_state``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from voice_server.media.plane import MediaPlane
from voice_server.media.route import Route
from voice_server.media.source import ServerSource
from voice_server.workers.pool import WorkerPool

__all__ = ["PlaneStage"]


class PlaneStage:
    def __init__(
        self,
        media: MediaPlane | WorkerPool,
        sessions_in: Callable[[str], Iterable[tuple[str, str]]],
    ) -> None:
        self.media = media
        self._sessions_in = sessions_in  # channel -> (session id, sub) of its sessions

    def attach_source(self, source_id: str, route: Route, *, logged: bool = True) -> ServerSource:
        return self.media.attach_source(source_id, route, logged=logged)

    def detach_source(self, source_id: str) -> None:
        self.media.detach_source(source_id)

    def slot_free(self, channel: str) -> bool:
        return self.media.slot_free(channel)

    def holds_slot(self, session_id: str, channel: str) -> bool:
        return self.media.holds_slot(session_id, channel)

    def listening(self, channel: str) -> set[str]:
        return {sub for sid, sub in self._sessions_in(channel) if self.media.media_connected(sid)}
