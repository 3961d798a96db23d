"""Cluster coordination on Redis (issue #20; README "Cluster coordination (Redis)").

Pure modules: ``keys`` (the key layout), ``timing`` (intervals and TTLs), ``refs`` (a node's
channel reference counts), ``backoff``, ``messages`` (inbox entries, the dedupe window). The
others talk to Redis through ``redis.asyncio``, imported only by :mod:`.client` when a Redis URL
is configured: ``nodes`` (heartbeats, live nodes), ``ownership`` (channel owner + epoch),
``channel_map`` (channel → nodes), ``sessions`` (session placement), ``inbox`` (per-node
control messages on a stream), ``events`` (cross-node pub/sub with resync), ``health``.
"""
