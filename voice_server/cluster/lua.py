"""Pieces shared by the Lua scripts (pure text)."""

from __future__ import annotations

__all__ = ["NOW"]

# ``now``: Redis's own clock in ms. Scripts read it instead of taking a time from the node
# (Redis 7 replicates a script's effects, so TIME before writes is allowed).
NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
