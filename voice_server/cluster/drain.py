"""Draining a node (``voice-server drain NODE``): the request through the node's inbox, and where
its clients may go (the other live nodes that take joins).

The command sends a ``drain`` message to the node's inbox (it survives a short disconnect of
the node), waits until the node's own report says ``draining`` (the node got it: it refuses new
joins and has sent its clients ``migrate``), then, unless told not to wait, until the node holds
no session or its deadline has passed (the node closes what is left then).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voice_server.cluster.inbox import send
from voice_server.cluster.keys import Keys
from voice_server.cluster.messages import InboxMessage
from voice_server.cluster.nodes import NodeInfo, NodeRegistry
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DRAIN", "DrainRefused", "DrainReport", "migrate_targets", "request_drain"]

DRAIN = "drain"  # the inbox message kind; body: deadline_s, incarnation
POLL_S = 0.1


class DrainRefused(Exception):
    """The drain could not be asked for or was not acknowledged (one line)."""


@dataclass(frozen=True, slots=True)
class DrainReport:
    node: str
    deadline_s: float
    acknowledged: bool
    sessions_left: int  # when the command stopped waiting (-1: the node was gone by then)

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "deadline_s": self.deadline_s,
            "acknowledged": self.acknowledged,
            "sessions_left": self.sessions_left,
        }


def migrate_targets(nodes: list[NodeInfo], self_id: str) -> list[str]:
    """The base URLs a draining node sends its clients to: every other live node that takes
    joins, least loaded first (pure)."""
    ready = [n for n in nodes if n.node_id != self_id and n.state == "ready" and n.base_url]
    return [n.base_url for n in sorted(ready, key=lambda n: (n.load, n.node_id))]


async def _node(registry: NodeRegistry, node_id: str) -> NodeInfo | None:
    return next((n for n in await registry.live_nodes() if n.node_id == node_id), None)


async def request_drain(
    client: Redis,
    keys: Keys,
    timing: Timing,
    node_id: str,
    deadline_s: float,
    *,
    wait: bool = True,
    sender: str = "cli",
) -> DrainReport:
    """Ask ``node_id`` to drain within ``deadline_s``. Raises DrainRefused (not live, no
    acknowledgement) and ClusterUnavailable."""
    registry = NodeRegistry(client, keys, timing)
    node = await _node(registry, node_id)
    if node is None:
        raise DrainRefused(f"node {node_id!r} is not live (no report in {timing.node_ttl_s:g} s)")
    body = {"deadline_s": deadline_s, "incarnation": node.incarnation}
    await send(client, keys, node_id, InboxMessage(DRAIN, sender, body))
    ack_by = time.monotonic() + max(5.0, 5 * timing.heartbeat_s)
    while node is None or node.state != "draining":
        if time.monotonic() > ack_by:
            raise DrainRefused(f"node {node_id!r} did not acknowledge the drain")
        await asyncio.sleep(POLL_S)
        node = await _node(registry, node_id)
    if not wait:
        return DrainReport(node_id, deadline_s, True, int(node.load))
    done_by = time.monotonic() + deadline_s + 3 * timing.heartbeat_s
    left: NodeInfo | None = node
    while left is not None and left.load > 0 and time.monotonic() < done_by:
        await asyncio.sleep(POLL_S)
        left = await _node(registry, node_id)
    return DrainReport(node_id, deadline_s, True, -1 if left is None else int(left.load))
