"""Each node's media relay index: a number 0-255 that names the node in relay datagrams
(:mod:`voice_server.media.relay_packet` has one byte for the sender).

One Lua script, so two nodes starting at once never get the same number: a node id keeps the
index it was given for good (a restarted node gets its own back; its new incarnation fences the
old one's datagrams); a new node id takes the lowest free one. A deployment therefore names at
most 256 distinct node ids over its life (``voice-server``'s README "Cluster": reuse ids).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voice_server.cluster.client import guarded
from voice_server.cluster.keys import Keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MAX_INDEX", "IndexesExhausted", "relay_index"]

MAX_INDEX = 255

# KEYS: indexes; ARGV: node id, max index. Returns the index, or -1 when all are taken.
ASSIGN = """
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if mine then return tonumber(mine) end
local used = {}
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do used[tonumber(v)] = true end
for i = 0, tonumber(ARGV[2]) do
  if not used[i] then
    redis.call('HSET', KEYS[1], ARGV[1], i)
    return i
  end
end
return -1
"""


class IndexesExhausted(Exception):
    """Every relay index is taken by another node id."""


async def relay_index(client: Redis, keys: Keys, node_id: str) -> int:
    """This node id's relay index (assigned on its first start). Raises IndexesExhausted,
    ClusterUnavailable."""
    index = int(await guarded(client.eval(ASSIGN, 1, keys.relay_indexes, node_id, MAX_INDEX)))
    if index < 0:
        raise IndexesExhausted(
            f"all {MAX_INDEX + 1} relay indexes are taken by other node ids "
            f"(clear {keys.relay_indexes} in Redis once the old nodes are gone)"
        )
    return index
