"""The CLI and the server process: one-line errors, signals, access to /metrics, containers."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import running_server
from tests.wsclient import Peer

pytestmark = pytest.mark.integration


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voice_server.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def test_token_prints_one_token_that_the_server_accepts(tmp_path: Path) -> None:
    out = cli("token", "--name", "alice", "--channel", "ops", "--data-dir", str(tmp_path))
    assert out.returncode == 0 and out.stdout.count("\n") == 1 and out.stdout.count(".") == 2


@pytest.mark.parametrize(
    "args",
    [
        ["token", "--name", "a"],  # no channel
        ["token", "--name", "a", "--channel", "ops", "--ttl", "0"],
        ["token", "--name", "a", "--channel", "ops", "--role", "king"],
        ["channels", "remove", "nope"],
        ["channels", "add", "bad name"],
        ["serve", "--config", "/nonexistent.toml"],
        ["serve", "--port", "70000"],
        ["frobnicate"],
    ],
)
def test_every_cli_error_is_one_line_and_a_nonzero_exit(tmp_path: Path, args: list[str]) -> None:
    out = cli(*args, "--data-dir", str(tmp_path)) if args[0] != "frobnicate" else cli(*args)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and out.stderr.strip(), out.stderr
    assert "Traceback" not in out.stderr


def test_channels_add_list_remove(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert cli("channels", "add", "shelter-a", "--display-name", "避難所A", *d).returncode == 0
    assert "避難所A" in cli("channels", "list", *d).stdout
    assert cli("channels", "add", "shelter-a", *d).returncode == 2
    assert cli("channels", "remove", "shelter-a", *d).returncode == 0
    assert cli("channels", "list", "--json", *d).stdout.strip() == "[]"


def test_serve_on_a_busy_port_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = cli("serve", "--data-dir", str(tmp_path), "--port", str(port))
    assert out.returncode == 1 and "already in use" in out.stderr
    assert out.stderr.strip().count("\n") == 0


def test_sigterm_closes_sessions_and_exits_cleanly(tmp_path: Path) -> None:
    with running_server(tmp_path) as server:
        token = server.token("zed")

        async def go() -> int | None:
            p = await Peer.connect(server.ws_url)
            await p.join(token)
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            return await p.closed(timeout=10)

        assert asyncio.run(go()) == 1012
        assert server.proc is not None
        # uvicorn re-raises the signal after its graceful shutdown, as a service manager expects
        assert server.proc.wait(10) in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.log()


def test_metrics_are_refused_to_addresses_not_allowed(tmp_path: Path) -> None:
    env = {"VOICE_METRICS_ALLOW": '["10.1.0.0/16"]'}
    with running_server(tmp_path, env=env) as server:
        r = httpx.get(f"{server.url}/metrics")
        assert r.status_code == 403 and "not available" in r.text
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_demo_mode_creates_channels_and_prints_credentials(tmp_path: Path) -> None:
    with running_server(tmp_path, channels=(), extra_args=["--demo"]) as server:
        log = server.log()
        assert "避難所A" in cli("channels", "list", "--data-dir", str(tmp_path)).stdout
        assert "token: " in log and "#channel=shelter-a&token=" in log


def _compose_command() -> list[str] | None:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(_compose_command() is None, reason="no docker compose client")
def test_docker_compose_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    cmd = _compose_command()
    assert cmd is not None
    out = subprocess.run(
        [*cmd, "-f", str(root / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
