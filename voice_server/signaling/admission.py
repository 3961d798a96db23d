"""What the hub asks of a cluster (``serve --redis-url``; None on one box): may a new session
start here, and which sessions live here. Implemented by :mod:`voice_server.cluster_node`."""

from __future__ import annotations

from typing import Protocol

__all__ = ["ClusterPort"]


class ClusterPort(Protocol):
    async def admit(self, channel: str) -> None:
        """Before a new session of ``channel`` is set up (a resume of a live session here is
        not asked): returns, or raises ProtocolError ``cluster_unavailable`` (Redis is away)
        or ``node_draining`` (join another node) without having set anything up."""

    def joined(self, session_id: str, channel: str) -> None:
        """A new session was set up here (must not wait: it only records and returns)."""

    def ended(self, session_id: str) -> None:
        """A session of this node ended (same rule)."""

    def routed(self, session_id: str, channels: frozenset[str]) -> None:
        """A session here now hears or talks into ``channels`` besides its own (a console's
        monitored channels and talk target; same rule): the channels' owners elsewhere send
        this node their audio, and take its talk."""
