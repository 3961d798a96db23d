"""Pieces shared by the Lua scripts (pure text)."""

from __future__ import annotations

__all__ = ["NOW", "PULSE"]

# ``now``: Redis's own clock in ms. Scripts read it instead of taking a time from the node
# (Redis 7 replicates a script's effects, so TIME before writes is allowed).
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ``recovering``: whether Redis was left alone longer than ``ttl`` ms (no script call from any
# node: Redis itself was stopped or unreachable, so every lease ran out through nobody's
# fault) within the last ``ttl`` ms. Needs ``now``, ``pulse_key``, ``recover_key`` and ``ttl``.
PULSE = """
local pulse = tonumber(redis.call('GET', pulse_key) or '0')
if pulse > 0 and now - pulse > ttl then
  redis.call('SET', recover_key, '1', 'PX', ttl)
end
redis.call('SET', pulse_key, now)
local recovering = redis.call('EXISTS', recover_key) == 1
"""
