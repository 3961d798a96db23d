"""The documented way clients reach a node (README "Cluster", "Running it"): every node behind one
HAProxy health-checking `/readyz`. Real Redis, PostgreSQL, two `serve` nodes and Debian's haproxy
running `deploy/haproxy.cfg` with loopback addresses. A node killed (SIGKILL) or drained leaves the
proxy's rotation and new joins through the proxy land on the other node. Every wait is on a
condition (the proxy's stats, the presence records in Redis), never on a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
import websockets

from tests.cluster_nodes import WAIT_S, running_nodes
from tests.servers import ServerProcess
from tests.wsclient import Peer
from voice_server.bench.ports import free_port
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
T = TypeVar("T")


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


def render(template: str, port: int, stats_port: int, nodes: dict[str, int]) -> str:
    """``deploy/haproxy.cfg`` on loopback: its binds on ``port`` and ``stats_port`` and each
    ``server <id> <id>:8000`` line pointing at that node's port of 127.0.0.1; nothing else
    changes (each replaced text must occur exactly once)."""
    swaps = {
        "bind :8080\n": f"bind 127.0.0.1:{port}\n",
        "bind :8404\n": f"bind 127.0.0.1:{stats_port}\n",
    }
    for node_id, node_port in nodes.items():
        swaps[f"server {node_id} {node_id}:8000 "] = f"server {node_id} 127.0.0.1:{node_port} "
    for old, new in swaps.items():
        assert template.count(old) == 1, f"{old!r} not once in {TEMPLATE}"
        template = template.replace(old, new)
    return template


class Proxy:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, stats_port: int) -> None:
        self.proc = proc
        self.port = port
        self.stats_port = stats_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def states(self) -> dict[str, str]:
        """The backend's servers as the proxy sees them now: id → ``UP``, ``DOWN``, ``UP 1/2``…"""
        text = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5).text
        rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "nodes" and row["svname"] not in ("FRONTEND", "BACKEND")
        }


@contextlib.contextmanager
def running_proxy(
    tmp_path: Path, nodes: list[ServerProcess], ids: list[str], port: int | None = None
) -> Iterator[Proxy]:
    """haproxy on ``port`` (default: a free one) of 127.0.0.1, once it sees every node UP."""
    binary = find_haproxy()
    assert binary is not None
    port, stats_port = port or free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        render(
            TEMPLATE.read_text(),
            port,
            stats_port,
            {i: n.port for i, n in zip(ids, nodes, strict=True)},
        )
    )
    check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = (tmp_path / "haproxy.log").open("wb")
    proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    proxy = Proxy(proc, port, stats_port)
    try:
        eventually(lambda: proxy.states() == dict.fromkeys(ids, "UP"), "every node UP at the proxy")
        yield proxy
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def eventually(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


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


def needs_haproxy() -> None:
    if find_haproxy() is None:
        pytest.skip("haproxy not installed (scripts/install-test-deps.sh installs it)")


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
