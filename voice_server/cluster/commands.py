"""``voice-server drain NODE``: ask a node of the cluster to drain (README "Cluster").

It stops taking joins (``node_draining``), sends its clients ``migrate`` and closes what is left
at the deadline. The command prints one JSON line (``node``, ``deadline_s``, ``acknowledged``,
``sessions_left``); a node that is not live, a Redis that cannot be reached or a drain that is
not acknowledged is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from typing import Any

from voice_server.cluster.client import ClusterUnavailable, open_client
from voice_server.cluster.drain import DrainRefused, DrainReport, request_drain
from voice_server.cluster.keys import Keys
from voice_server.cluster.startup import redis_where
from voice_server.cluster.timing import Timing
from voice_server.config import Config

__all__ = ["COMMAND", "add_parser", "run"]

COMMAND = "drain"


class DrainFailed(Exception):
    """One line for the CLI (exit 1)."""


def add_parser(sub: Any, state: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "drain", help="stop new joins on a node of the cluster and move its clients elsewhere"
    )
    state(p)
    p.add_argument("node", help="the node id (its serve --node-id)")
    p.add_argument("--redis-url", help="the cluster's Redis (default: redis_url of the config)")
    p.add_argument(
        "--deadline",
        type=float,
        help="seconds until its remaining sessions are closed (default: drain_seconds, 30)",
    )
    p.add_argument(
        "--no-wait", action="store_true", help="return once the node has acknowledged the drain"
    )


def run(args: argparse.Namespace, config: Config) -> int:
    url = args.redis_url or config.redis_url
    if not url:
        raise DrainFailed("voice-server drain: no Redis (give --redis-url or redis_url)")
    deadline = config.drain_seconds if args.deadline is None else args.deadline
    if not 0 <= deadline <= 3600:
        raise DrainFailed("voice-server drain: --deadline must be 0..3600 seconds")
    timing = Timing.derived(config.cluster_heartbeat_seconds, config.cluster_node_ttl_seconds)
    report = asyncio.run(
        _drain(url, Keys(config.cluster_prefix), timing, args.node, deadline, not args.no_wait)
    )
    print(json.dumps(report.as_dict()))
    return 0


async def _drain(
    url: str, keys: Keys, timing: Timing, node: str, deadline: float, wait: bool
) -> DrainReport:
    client = open_client(url)
    try:
        return await request_drain(client, keys, timing, node, deadline, wait=wait)
    except ClusterUnavailable as exc:
        where = redis_where(url)
        raise DrainFailed(f"voice-server drain: cannot reach Redis at {where}: {exc}") from None
    except DrainRefused as exc:
        raise DrainFailed(f"voice-server drain: {exc}") from None
    finally:
        await client.aclose()
