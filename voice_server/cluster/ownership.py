"""Channel ownership across nodes: one owner per channel, fenced by an epoch. ``acquire`` is one
Lua script, so it is atomic: when the channel has an owner it returns that owner (renewing the
lease when the caller is it), otherwise it takes the next epoch from the deployment's counter
(``INCR``; never below the caller's ``floor``) and writes the owner with a lease that Redis
expires (Redis's clock). Two nodes racing get the same answer: exactly one owner, one epoch. The
same process claiming a channel again after its lease ran out (a Redis outage: every lease
expired by Redis's clock meanwhile) with nobody else having held it since keeps its epoch: the
same arbiter goes on, and nothing it or its peers send is fenced off. A live owner renews its
lease with the epoch it holds; a renewal or release whose epoch is not the current one is
refused (the lease expired and someone else may own the channel now: the old owner must stop
arbitrating). Re-owning after the owner's death (its lease expired) takes a new, higher epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voice_server.cluster.client import guarded
from voice_server.cluster.keys import Keys
from voice_server.cluster.lua import NOW, PULSE
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ChannelOwnership", "Owner"]

# KEYS: epoch, pulse, recovering, then owner and last owner of each channel; ARGV: node,
# incarnation, lease ms, epoch floor. Returns {node, incarnation, epoch} per channel. While Redis
# recovers from an absence (every lease ran out meanwhile), a channel's last owner is returned
# unclaimed to anyone else: it claims its channel back itself, with the same epoch.
ACQUIRE = (
    NOW
    + """
local pulse_key, recover_key, ttl = KEYS[2], KEYS[3], tonumber(ARGV[3])
"""
    + PULSE
    + """
local function acquire(owner_key, last_key)
  local cur = redis.call('HMGET', owner_key, 'node', 'incarnation', 'epoch')
  if cur[1] then
    if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
      redis.call('PEXPIRE', owner_key, ARGV[3])
    end
    return cur
  end
  local e
  local last = redis.call('HMGET', last_key, 'node', 'incarnation', 'epoch')
  if recovering and last[1] and (last[1] ~= ARGV[1] or last[2] ~= ARGV[2]) then
    return last
  end
  if last[1] == ARGV[1] and last[2] == ARGV[2] then
    e = tonumber(last[3])
  else
    e = redis.call('INCR', KEYS[1])
    if e <= tonumber(ARGV[4]) then
      e = tonumber(ARGV[4]) + 1
      redis.call('SET', KEYS[1], e)
    end
  end
  redis.call('HSET', owner_key, 'node', ARGV[1], 'incarnation', ARGV[2], 'epoch', e)
  redis.call('PEXPIRE', owner_key, ARGV[3])
  redis.call('HSET', last_key, 'node', ARGV[1], 'incarnation', ARGV[2], 'epoch', e)
  redis.call('PEXPIRE', last_key, 86400000)
  return {ARGV[1], ARGV[2], tostring(e)}
end
local out = {}
for i = 4, #KEYS, 2 do
  table.insert(out, acquire(KEYS[i], KEYS[i + 1]))
end
return out
"""
)
BATCH = 100  # channels per script call

# KEYS: owner1, owner2, ...; ARGV: node, incarnation, lease ms (0: release), epoch1, epoch2, ...
# Returns 1 (renewed or released) or 0 (refused) per key.
RENEW = """
local out = {}
for i = 1, #KEYS do
  local cur = redis.call('HMGET', KEYS[i], 'node', 'incarnation', 'epoch')
  if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] or cur[3] ~= ARGV[3 + i] then
    out[i] = 0
  elseif tonumber(ARGV[3]) == 0 then
    redis.call('DEL', KEYS[i])
    out[i] = 1
  else
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    out[i] = 1
  end
end
return out
"""


@dataclass(frozen=True, slots=True)
class Owner:
    channel: str
    node_id: str
    incarnation: str
    epoch: int

    def is_node(self, node_id: str, incarnation: str) -> bool:
        return self.node_id == node_id and self.incarnation == incarnation


class ChannelOwnership:
    """One node's view: it acquires, renews and releases; ``max_epoch`` is the highest epoch it
    has seen (the floor it passes on, so epochs keep growing after Redis lost its counter)."""

    def __init__(
        self, client: Redis, keys: Keys, timing: Timing, node_id: str, incarnation: str
    ) -> None:
        self._client = client
        self._keys = keys
        self._lease_ms = timing.ms(timing.lease_s)
        self.node_id = node_id
        self.incarnation = incarnation
        self.max_epoch = 0
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)

    def _seen(self, channel: str, raw: list[Any]) -> Owner:
        owner = Owner(channel, str(raw[0]), str(raw[1]), int(raw[2]))
        self.max_epoch = max(self.max_epoch, owner.epoch)
        return owner

    async def acquire(self, channel: str) -> Owner:
        """The channel's owner: this node (a new epoch, or its lease renewed) when the channel
        had none or already was this node's, else the current owner."""
        return (await self.acquire_all([channel]))[0]

    async def acquire_all(self, channels: list[str]) -> list[Owner]:
        """:meth:`acquire` of several channels, ``BATCH`` per round trip, in order."""
        out: list[Owner] = []
        for start in range(0, len(channels), BATCH):
            part = channels[start : start + BATCH]
            keys = [self._keys.epoch, self._keys.pulse, self._keys.recovering]
            for channel in part:
                keys += [self._keys.owner(channel), self._keys.last_owner(channel)]
            raws = await guarded(
                self._acquire(
                    keys=keys,
                    args=[self.node_id, self.incarnation, self._lease_ms, self.max_epoch],
                )
            )
            out += [self._seen(c, raw) for c, raw in zip(part, raws, strict=True)]
        return out

    async def owner(self, channel: str) -> Owner | None:
        raw = await guarded(
            self._client.hmget(self._keys.owner(channel), ["node", "incarnation", "epoch"])
        )
        return None if raw[0] is None else self._seen(channel, raw)

    async def renew(self, lease: Owner) -> bool:
        """Extend this node's lease; False: refused (not the current owner and epoch)."""
        return (await self._check([lease], self._lease_ms))[0]

    async def renew_all(self, leases: list[Owner]) -> list[bool]:
        """Renew several leases in one round trip; each answer as :meth:`renew`'s."""
        return await self._check(leases, self._lease_ms) if leases else []

    async def release(self, lease: Owner) -> bool:
        """Give the channel up (no session of it left here); refused like :meth:`renew`."""
        return (await self._check([lease], 0))[0]

    async def _check(self, leases: list[Owner], lease_ms: int) -> list[bool]:
        for lease in leases:
            if not lease.is_node(self.node_id, self.incarnation):
                raise ValueError(f"{lease.channel}: the lease is {lease.node_id}'s, not ours")
        keys = [self._keys.owner(lease.channel) for lease in leases]
        args: list[str | int] = [self.node_id, self.incarnation, lease_ms]
        args += [str(lease.epoch) for lease in leases]
        done = await guarded(self._renew(keys=keys, args=args))
        return [bool(int(d)) for d in done]
