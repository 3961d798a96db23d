"""A throwaway Redis for the tests and the benchmarks: Debian's ``redis-server`` on a free port
of 127.0.0.1, its working directory a temporary folder, no persistence (no RDB snapshots, no
AOF), no protected mode needed (loopback only). :meth:`RedisServer.kill` ends it with SIGKILL
and :meth:`RedisServer.start` brings a new, empty one up on the same port: what a crashed
Redis without persistence looks like to its clients.

Readiness is probed with a raw ``PING`` on a socket, so this module needs no client library.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voice_server.bench.ports import free_port

__all__ = ["RedisServer", "find_redis_server", "running_redis"]

HOST = "127.0.0.1"
READY_TIMEOUT = 20.0


def find_redis_server() -> str | None:
    """The ``redis-server`` binary (``VOICE_REDIS_SERVER`` or on PATH); None: not installed."""
    env = os.environ.get("VOICE_REDIS_SERVER")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


def ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers ``PING`` on 127.0.0.1:``port`` now."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, binary: str, root: Path, port: int) -> None:
        self.binary = binary
        self.root = root
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        """Start it (again) on :attr:`port`; returns once it answers ``PING``."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("redis-server is already running")
        args = [
            self.binary, "--port", str(self.port), "--bind", HOST, "--dir", str(self.root),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning",
            "--logfile", str(self.root / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT
        while not ping(self.port):
            if self.proc.poll() is not None:
                log = (self.root / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server exited ({self.proc.returncode}): {log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer on port {self.port}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown, nothing saved; waits for the process to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_redis(binary: str | None = None) -> Iterator[RedisServer]:
    found = binary or find_redis_server()
    if found is None:
        raise RuntimeError("redis-server not found (Debian package redis-server)")
    root = Path(tempfile.mkdtemp(prefix="voice-redis-"))
    server = RedisServer(found, root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
