"""The documented way clients reach a node (README "Cluster", "Running it"): every node behind one
HAProxy health-checking `/readyz`. Real Redis, PostgreSQL, two `serve` nodes and Debian's haproxy
running `deploy/haproxy.cfg` with loopback addresses. A node killed (SIGKILL) or drained leaves the
proxy's rotation and new joins through the proxy land on the other node. Every wait is on a
condition (the proxy's stats, the presence records in Redis), never on a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import websockets

from tests.cluster_nodes import WAIT_S, eventually, running_nodes
from tests.cluster_proxy import Proxy, needs_haproxy, running_proxy
from tests.wsclient import Peer
from voice_server.bench.ports import free_port
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.integration

T = TypeVar("T")


async def until(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """:func:`eventually` that keeps the event loop (the open sockets) running meanwhile."""
    return await asyncio.to_thread(eventually, check, what, timeout)


class Client:
    """A signaling client joined through the proxy, kept open; ``node``: where it landed."""

    def __init__(self, peer: Peer, device: str, session_id: str, node: str) -> None:
        self.peer, self.device, self.session_id, self.node = peer, device, session_id, node


async def join_via(proxy: Proxy, r: redis.Redis, token: str, device: str) -> Client:
    """Join ``ops`` through the proxy; a connection the proxy refuses (503 while it has no node
    up, e.g. a busy machine's slow check) is tried again, a refused join is not."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        try:
            peer = await Peer.connect(proxy.ws_url)
            break
        except (OSError, websockets.InvalidStatus):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)
    await peer.send(type="join", token=token, channel="ops", device_id=device, id="j")
    msg = await peer.recv(30)
    while msg["type"] not in ("joined", "error"):
        msg = await peer.recv(30)
    if msg["type"] == "error":
        await peer.close()
        raise AssertionError(f"join through the proxy refused: {msg}")
    session_id = str(msg["session_id"])
    # the node holding the session, from its presence record in Redis
    node = await until(lambda: r.hget(f"{{voice}}:session:{session_id}", "node"), "presence")
    return Client(peer, device, session_id, str(node))


def test_a_killed_node_leaves_the_proxy_and_new_joins_land_on_the_other(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    needs_haproxy()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    ids = ["n1", "n2"]
    with (
        running_nodes(tmp_path, pg_url, redis_server.url, *ids) as nodes,
        running_proxy(tmp_path, nodes, ids) as proxy,
    ):
        by_id = dict(zip(ids, nodes, strict=True))
        token = nodes[0].token("kim", "ops")
        # the proxy answers /readyz of some node, and keeps /metrics to the nodes' own loopback
        assert httpx.get(f"{proxy.url}/readyz", timeout=10).status_code == 200
        assert httpx.get(f"{proxy.url}/metrics", timeout=10).status_code == 403

        async def scenario() -> None:
            # two open sockets: least connections puts them on different nodes
            first = await join_via(proxy, r, token, "kim-1")
            second = await join_via(proxy, r, token, "kim-2")
            assert {first.node, second.node} == set(ids)
            victim, survivor = first.node, second.node
            await asyncio.to_thread(by_id[victim].stop, signal.SIGKILL)
            # the proxy ends the killed node's client socket; the other one stays
            with contextlib.suppress(websockets.ConnectionClosed):
                await first.peer.closed(30)
            await until(
                lambda: proxy.states()[victim].startswith("DOWN"), f"{victim} DOWN at the proxy"
            )
            await until(lambda: proxy.states()[survivor] == "UP", f"{survivor} UP")
            # rejoining through the same address lands on the live node, every time
            again = [await join_via(proxy, r, token, f"kim-{n}") for n in (3, 4, 5)]
            assert [c.node for c in again] == [survivor] * 3
            await second.peer.send(type="ping", id="p")  # the survivor's client is untouched
            assert second.peer.ws.close_code is None
            for c in (second, *again):
                await c.peer.close()

        asyncio.run(scenario())


def test_a_drained_node_leaves_the_proxy_and_its_clients_move_through_it(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    needs_haproxy()
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    ids = ["n1", "n2"]
    with contextlib.ExitStack() as stack:
        # every node's public_url is the proxy's address (docker-compose.yml's cluster profile)
        port = free_port()
        public = {"VOICE_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        nodes = stack.enter_context(
            running_nodes(tmp_path, pg_url, redis_server.url, *ids, env=public)
        )
        proxy = stack.enter_context(running_proxy(tmp_path, nodes, ids, port))
        by_id = dict(zip(ids, nodes, strict=True))
        token = nodes[0].token("kim", "ops")

        async def scenario() -> None:
            first = await join_via(proxy, r, token, "kim-1")
            second = await join_via(proxy, r, token, "kim-2")
            assert {first.node, second.node} == set(ids)
            drained, other = "n1", "n2"
            on_drained = first if first.node == drained else second
            await asyncio.to_thread(
                by_id[drained].cli, "drain", drained, "--deadline", "60", "--no-wait"
            )
            # the node's clients are asked to move: to the proxy, the one address they know
            migrate: dict[str, Any] = await on_drained.peer.expect("migrate", timeout=30)
            assert migrate["url"] == proxy.url
            await until(
                lambda: proxy.states()[drained].startswith("DOWN"), f"{drained} DOWN at the proxy"
            )
            await until(lambda: proxy.states()[other] == "UP", f"{other} UP")
            # the moving client and new ones, all while the old sockets are open, land on n2
            moved = await join_via(proxy, r, token, on_drained.device)
            fresh = [await join_via(proxy, r, token, f"new-{n}") for n in (1, 2, 3)]
            assert [c.node for c in (moved, *fresh)] == [other] * 4
            for c in (first, second, moved, *fresh):
                await c.peer.close()

        asyncio.run(scenario())
