"""The documented proxy in front of a cluster's nodes (README "Cluster", "Running it") for tests:
Debian's haproxy running ``deploy/haproxy.cfg`` with its addresses and ports replaced by loopback
ones (nothing else changes), started once it sees every node UP."""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cluster_nodes import eventually
from tests.servers import ServerProcess
from voice_server.bench.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "haproxy.cfg"


def find_haproxy() -> str | None:
    return shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )


def needs_haproxy() -> None:
    if find_haproxy() is None:
        pytest.skip("haproxy not installed (scripts/install-test-deps.sh installs it)")


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
