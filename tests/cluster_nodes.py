"""Nodes of a cluster for integration tests: `serve --node-id … --redis-url …` processes on free
ports of 127.0.0.1, one PostgreSQL database and one Redis between them, the deployment key
copied from the first node's data directory (tokens are valid on every node)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.servers import ServerProcess
from voice_server.bench.ports import free_port
from voice_server.identity.keys import KEY_FILE, load_or_create_key

T = TypeVar("T")
WAIT_S = 60.0
# short, so tests wait seconds for a death; long enough for a busy machine's round trips
FAST = {"VOICE_CLUSTER_HEARTBEAT_SECONDS": "0.2", "VOICE_CLUSTER_NODE_TTL_SECONDS": "1.5"}


def cluster_env(pg_url: str, redis_url: str, node_id: str) -> dict[str, str]:
    return {
        "VOICE_DATABASE_URL": pg_url,
        "VOICE_REDIS_URL": redis_url,
        "VOICE_NODE_ID": node_id,
        **FAST,
    }


def node_process(
    root: Path, node_id: str, pg_url: str, redis_url: str, env: dict[str, str] | None = None
) -> ServerProcess:
    """A node, not started; its data directory holds the deployment key of ``root/key``."""
    data = root / node_id
    data.mkdir(parents=True, exist_ok=True)
    shared = root / KEY_FILE
    if shared.exists():
        shutil.copy(shared, data / KEY_FILE)
    server = ServerProcess(
        data,
        free_port(),
        free_port(socket.SOCK_DGRAM),
        {**cluster_env(pg_url, redis_url, node_id), **(env or {})},
    )
    if not shared.exists():
        load_or_create_key(data)
        shutil.copy(data / KEY_FILE, shared)
        server.cli("channels", "add", "ops")  # in the one PostgreSQL database
    return server


@contextlib.contextmanager
def running_nodes(
    root: Path, pg_url: str, redis_url: str, *ids: str, env: dict[str, str] | None = None
) -> Iterator[list[Any]]:
    nodes = [node_process(root, node_id, pg_url, redis_url, env) for node_id in ids]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def serve_refused(server: ServerProcess, timeout: float = WAIT_S) -> tuple[int, str]:
    """Run ``serve`` for a node expected to refuse to start: its exit code and stderr."""
    cmd = [
        sys.executable, "-m", "voice_server.cli", "serve", "--data-dir", str(server.data_dir),
        "--port", str(server.port), "--media-port", str(server.media_port),
    ]  # fmt: skip
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **server.env}
    )
    return out.returncode, out.stderr


def ready(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"{server.url}/readyz", timeout=10)
    return r.status_code, r.json()


def metric(server: ServerProcess, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name) and line[len(name)] in " {":
            total += float(line.rsplit(" ", 1)[1])
    return total


def eventually(check: Callable[[], T | None], what: str, timeout: float = WAIT_S) -> T:
    """Poll ``check`` until it returns something truthy (errors count as not yet)."""
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
