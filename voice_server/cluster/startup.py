"""The checks ``serve --redis-url`` makes before it starts anything: Redis answers, and no other
live node reports under this node id. Each failure is one line (:class:`StartRefused`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from voice_server.cluster.client import ClusterUnavailable, open_client
from voice_server.cluster.keys import Keys
from voice_server.cluster.nodes import DuplicateNode, NodeRegistry
from voice_server.cluster.timing import Timing

__all__ = ["StartRefused", "check_start", "redis_where"]

STARTUP_TIMEOUT_S = 2.0


class StartRefused(Exception):
    """This node cannot join the cluster now (the message is one line)."""


def redis_where(url: str) -> str:
    """``host:port`` of a Redis URL, for messages (never its password)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or '?'}:{parts.port or 6379}"
    except ValueError:
        return "?"


async def check_start(
    url: str, keys: Keys, timing: Timing, *, node_id: str, incarnation: str, base_url: str
) -> None:
    """Report this node once (state ``starting``: not yet a place to send clients). Raises
    StartRefused when Redis cannot be reached or another live node holds ``node_id``."""
    client = open_client(url, command_timeout_s=STARTUP_TIMEOUT_S)
    try:
        registry = NodeRegistry(client, keys, timing)
        await registry.heartbeat(node_id, 0.0, base_url, incarnation=incarnation, state="starting")
    except ClusterUnavailable as exc:
        raise StartRefused(f"cannot reach Redis at {redis_where(url)}: {exc}") from None
    except DuplicateNode:
        raise StartRefused(
            f"node id {node_id!r} is in use by another live node (its last report is under "
            f"{timing.node_ttl_s:g} s old): give this node another --node-id"
        ) from None
    finally:
        await client.aclose()
