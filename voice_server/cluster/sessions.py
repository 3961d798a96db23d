"""Session placement records: which node holds a session (a rejoin or a move finds it there).

``place`` is atomic (one Lua script): a session already held by another node stays there and
that node is returned; a record expires unless its node refreshes it (``session_ttl_s``, Redis's
clock), so a dead node's sessions can be placed again. ``move`` hands a session from one node to
another only if the first still holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voice_server.cluster.client import guarded
from voice_server.cluster.keys import Keys
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["Placement", "SessionPlacement"]

# KEYS: session; ARGV: node, channel, ttl ms, the holder a move expects ("": a new placement,
# which succeeds only on a free session or one ARGV[1] holds). Returns the record after the call.
PLACE = """
local cur = redis.call('HMGET', KEYS[1], 'node', 'channel')
local want = ARGV[4]
if cur[1] and cur[1] ~= ARGV[1] and cur[1] ~= want then
  return cur
end
if not cur[1] and want ~= '' and want ~= ARGV[1] then
  return {false, false}
end
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'channel', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {ARGV[1], ARGV[2]}
"""

# KEYS: session; ARGV: node, ttl ms (0: remove)
REFRESH = """
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Placement:
    session_id: str
    node_id: str
    channel: str


class SessionPlacement:
    def __init__(self, client: Redis, keys: Keys, timing: Timing) -> None:
        self._client = client
        self._keys = keys
        self._ttl_ms = timing.ms(timing.session_ttl_s)
        self._place = client.register_script(PLACE)
        self._refresh = client.register_script(REFRESH)

    async def place(self, session_id: str, node_id: str, channel: str) -> Placement:
        """Place the session on ``node_id`` unless another node holds it: the record after."""
        return await self._set(session_id, node_id, channel, "")

    async def move(self, session_id: str, from_node: str, to_node: str, channel: str) -> bool:
        """Hand the session from ``from_node`` to ``to_node``; False when ``from_node`` no longer
        holds it (another move won, or the record expired)."""
        after = await self._set(session_id, to_node, channel, from_node)
        return after.node_id == to_node

    async def refresh(self, session_id: str, node_id: str) -> bool:
        """Extend the record; False when ``node_id`` does not hold the session."""
        done = await guarded(
            self._refresh(keys=[self._keys.session(session_id)], args=[node_id, self._ttl_ms])
        )
        return bool(int(done))

    async def remove(self, session_id: str, node_id: str) -> bool:
        """The session ended on ``node_id`` (only that node's record is removed)."""
        done = await guarded(
            self._refresh(keys=[self._keys.session(session_id)], args=[node_id, 0])
        )
        return bool(int(done))

    async def hold_all(self, node_id: str, sessions: list[tuple[str, str]]) -> list[str]:
        """Place (or keep) each ``(session id, channel)`` on ``node_id`` in one round trip, its
        expiry renewed: a node's periodic presence. The ids another node holds instead."""
        if not sessions:
            return []
        pipe = self._client.pipeline(transaction=False)
        for session_id, channel in sessions:
            await self._place(
                keys=[self._keys.session(session_id)],
                args=[node_id, channel, self._ttl_ms, ""],
                client=pipe,
            )
        rows = await guarded(pipe.execute())
        return [sid for (sid, _), (node, _) in zip(sessions, rows, strict=True) if node != node_id]

    async def remove_all(self, node_id: str, session_ids: list[str]) -> None:
        """Remove these ended sessions' records (only those ``node_id`` holds), one round trip."""
        if not session_ids:
            return
        pipe = self._client.pipeline(transaction=False)
        for session_id in session_ids:
            await self._refresh(
                keys=[self._keys.session(session_id)], args=[node_id, 0], client=pipe
            )
        await guarded(pipe.execute())

    async def lookup(self, session_id: str) -> Placement | None:
        node, channel = await guarded(
            self._client.hmget(self._keys.session(session_id), ["node", "channel"])
        )
        return None if node is None else Placement(session_id, node, channel or "")

    async def _set(self, session_id: str, node_id: str, channel: str, want: str) -> Placement:
        node, chan = await guarded(
            self._place(
                keys=[self._keys.session(session_id)],
                args=[node_id, channel, self._ttl_ms, want],
            )
        )
        return Placement(session_id, node or "", chan or "")
