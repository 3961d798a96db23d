"""The node registry: heartbeats with load and base URL, and which nodes are alive.

A heartbeat is one Lua script: it reads Redis's clock (``TIME``), stores the node's report with
that time and lets the report expire after the node TTL; ``live_nodes`` reads the same clock and
drops every node whose last report is older than the TTL. No node's wall clock is involved, so
skew between nodes cannot make one look dead or alive. A second process that reports under a
live node's id with another incarnation is refused (:class:`DuplicateNode`). Each heartbeat also
raises the deployment's epoch counter to the highest epoch the node has seen, so owner epochs
keep growing after a Redis without persistence restarts empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voice_server.cluster.client import guarded
from voice_server.cluster.keys import Keys
from voice_server.cluster.lua import NOW, PULSE
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DuplicateNode", "NodeInfo", "NodeRegistry"]

# KEYS: nodes, node, epoch, pulse, recovering; ARGV: node id, incarnation, load, base_url, ttl ms,
# epoch floor, state, relay (the media relay's "index incarnation host port"; empty: none)
HEARTBEAT = (
    NOW
    + """
local pulse_key, recover_key, ttl = KEYS[4], KEYS[5], tonumber(ARGV[5])
"""
    + PULSE
    + """
local held = redis.call('HMGET', KEYS[2], 'incarnation', 'seen_ms')
if held[1] and held[1] ~= ARGV[2] and now - tonumber(held[2]) <= tonumber(ARGV[5]) then
  return {0, now, held[1]}
end
redis.call('HSET', KEYS[2], 'incarnation', ARGV[2], 'load', ARGV[3], 'base_url', ARGV[4],
  'seen_ms', now, 'state', ARGV[7], 'relay', ARGV[8])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[1], now, ARGV[1])
if tonumber(redis.call('GET', KEYS[3]) or '0') < tonumber(ARGV[6]) then
  redis.call('SET', KEYS[3], ARGV[6])
end
return {1, now, ARGV[2]}
"""
)

# KEYS: nodes; ARGV: ttl ms. Drops the dead, returns {now, id1, seen1, id2, seen2, ...}
LIVE = (
    NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
local out = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
table.insert(out, 1, now)
return out
"""
)

# KEYS: nodes, node; ARGV: node id, incarnation
LEAVE = """
if redis.call('HGET', KEYS[2], 'incarnation') == ARGV[2] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class DuplicateNode(Exception):
    """Another live process reports under this node id."""


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node_id: str
    incarnation: str
    load: float
    base_url: str
    age_ms: int  # how old its last report is, by Redis's clock
    state: str = "ready"  # what it says it does: ready (takes joins) or draining
    relay: str = ""  # its media relay: "index incarnation host port" (empty: none reported)


class NodeRegistry:
    def __init__(self, client: Redis, keys: Keys, timing: Timing) -> None:
        self._client = client
        self._keys = keys
        self._timing = timing
        self._heartbeat = client.register_script(HEARTBEAT)
        self._live = client.register_script(LIVE)
        self._leave = client.register_script(LEAVE)

    async def heartbeat(
        self,
        node_id: str,
        load: float,
        base_url: str,
        *,
        incarnation: str,
        epoch_floor: int = 0,
        state: str = "ready",
        relay: str = "",
    ) -> int:
        """Report ``node_id`` alive; Redis's time of the report (ms). Raises DuplicateNode,
        ClusterUnavailable."""
        if not math.isfinite(load) or load < 0:
            raise ValueError("load must be a finite number >= 0")
        k = self._keys
        ok, now, holder = await guarded(
            self._heartbeat(
                keys=[k.nodes, k.node(node_id), k.epoch, k.pulse, k.recovering],
                args=[node_id, incarnation, repr(float(load)), base_url,
                      self._timing.ms(self._timing.node_ttl_s), epoch_floor, state, relay],
            )
        )  # fmt: skip
        if not int(ok):
            raise DuplicateNode(f"node id {node_id!r} is in use by incarnation {holder}")
        return int(now)

    async def live_nodes(self) -> list[NodeInfo]:
        """Every node whose last report is at most the TTL old (Redis time), by node id."""
        k = self._keys
        raw: list[Any] = await guarded(
            self._live(keys=[k.nodes], args=[self._timing.ms(self._timing.node_ttl_s)])
        )
        now = int(raw[0])
        seen = {str(raw[i]): int(float(raw[i + 1])) for i in range(1, len(raw), 2)}
        ids = sorted(seen)
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for node_id in ids:
            pipe.hmget(k.node(node_id), ["incarnation", "load", "base_url", "state", "relay"])
        rows: list[list[str | None]] = await guarded(pipe.execute())
        out = []
        for node_id, (inc, load, url, state, relay) in zip(ids, rows, strict=True):
            if inc is None:  # expired between the two reads
                continue
            age = now - seen[node_id]
            out.append(
                NodeInfo(
                    node_id, inc, float(load or 0), url or "", age, state or "ready", relay or ""
                )
            )
        return out

    async def leave(self, node_id: str, *, incarnation: str) -> bool:
        """Remove the node's report now (a clean stop); only its own incarnation's."""
        k = self._keys
        done = await guarded(
            self._leave(keys=[k.nodes, k.node(node_id)], args=[node_id, incarnation])
        )
        return bool(int(done))
