"""The channel → nodes map: which nodes have sessions in a channel (the relay sends each packet
once per such node).

Each node writes only its own entries: a sorted-set member per channel whose score is the
Redis time (ms) at which it expires, and its session count in a hash beside it. The node keeps
the counts (:class:`ChannelRefs`), writes an entry when its first session joins, removes it when
its last leaves, and re-asserts all of its entries every ``reassert_s`` (so they come back by
themselves after Redis lost them); a dead node's entries expire ``channel_entry_ttl_s`` after
its last re-assertion. Readers see only entries that have not expired, by Redis's clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice_server.cluster.client import guarded
from voice_server.cluster.keys import Keys
from voice_server.cluster.lua import NOW
from voice_server.cluster.refs import ChannelRefs
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ChannelMap"]

# KEYS: chan1, chanrefs1, chan2, chanrefs2, ...; ARGV: node, ttl ms, count1, count2, ...
# (a count of 0 removes the node's entry)
ASSERT = (
    NOW
    + """
local ttl = tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local count = ARGV[2 + (i + 1) / 2]
  if tonumber(count) == 0 then
    redis.call('ZREM', KEYS[i], ARGV[1])
    redis.call('HDEL', KEYS[i + 1], ARGV[1])
  else
    redis.call('ZADD', KEYS[i], now + ttl, ARGV[1])
    redis.call('HSET', KEYS[i + 1], ARGV[1], count)
    redis.call('PEXPIRE', KEYS[i], ttl)
    redis.call('PEXPIRE', KEYS[i + 1], ttl)
  end
end
return 1
"""
)
BATCH = 100  # channels per script call

# KEYS: chan1, chanrefs1, chan2, chanrefs2, ... Drops expired entries; returns one list per
# channel: {{node1, count1, node2, count2, ...}, ...}
READ = (
    NOW
    + """
local all = {}
for i = 1, #KEYS, 2 do
  local gone = redis.call('ZRANGEBYSCORE', KEYS[i], '-inf', now)
  for _, node in ipairs(gone) do
    redis.call('ZREM', KEYS[i], node)
    redis.call('HDEL', KEYS[i + 1], node)
  end
  local out = {}
  for _, node in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do
    table.insert(out, node)
    table.insert(out, redis.call('HGET', KEYS[i + 1], node) or '0')
  end
  table.insert(all, out)
end
return all
"""
)


class ChannelMap:
    """One node's side of the map (its own entries), and reads of every node's."""

    def __init__(self, client: Redis, keys: Keys, timing: Timing, node_id: str) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = timing.ms(timing.channel_entry_ttl_s)
        self.node_id = node_id
        self.refs = ChannelRefs()
        self._assert = client.register_script(ASSERT)
        self._read = client.register_script(READ)

    async def join(self, channel: str) -> None:
        """One more session of this node in ``channel``. The count is kept even when Redis is
        unreachable (ClusterUnavailable): the next :meth:`reassert` writes it."""
        await self._write([(channel, self.refs.add(channel))])

    async def leave(self, channel: str) -> None:
        """One session fewer; the node's entry goes with its last session."""
        await self._write([(channel, self.refs.remove(channel))])

    async def write(self, channels: list[str]) -> None:
        """Write these channels' entries as the counts stand now (0: removed): what a node whose
        counts changed locally (while Redis was away, or without waiting) sends."""
        items = [(channel, self.refs.count(channel)) for channel in sorted(set(channels))]
        for start in range(0, len(items), BATCH):
            await self._write(items[start : start + BATCH])

    async def reassert(self) -> None:
        """Write every entry of this node again (every ``reassert_s``)."""
        items = self.refs.items()
        for start in range(0, len(items), BATCH):
            await self._write(items[start : start + BATCH])

    async def nodes(self, channel: str) -> dict[str, int]:
        """The live nodes with sessions in ``channel`` → how many each has."""
        return (await self.nodes_of([channel]))[channel]

    async def nodes_of(self, channels: list[str]) -> dict[str, dict[str, int]]:
        """:meth:`nodes` of several channels, ``BATCH`` channels per round trip."""
        out: dict[str, dict[str, int]] = {}
        for start in range(0, len(channels), BATCH):
            part = channels[start : start + BATCH]
            keys = [key for channel in part for key in self._channel_keys(channel)]
            raws = await guarded(self._read(keys=keys))
            for channel, raw in zip(part, raws, strict=True):
                out[channel] = {str(raw[i]): int(raw[i + 1]) for i in range(0, len(raw), 2)}
        return out

    def _channel_keys(self, channel: str) -> list[str]:
        return [self._keys.channel_nodes(channel), self._keys.channel_refs(channel)]

    async def _write(self, items: list[tuple[str, int]]) -> None:
        keys = [key for channel, _ in items for key in self._channel_keys(channel)]
        args: list[str | int] = [self.node_id, self._ttl_ms, *(count for _, count in items)]
        await guarded(self._assert(keys=keys, args=args))
