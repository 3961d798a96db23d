"""The real ``voice-server serve`` as a child process of a benchmark, on free local ports.

The child runs this checkout's code (``PYTHONPATH`` is set to the directory holding
``voice_server``) with a throw-away data directory holding one channel; its log goes to a file
in that directory. :func:`http_get` is a minimal HTTP/1.1 client for ``/readyz`` and
``/metrics`` (the runtime has no HTTP client library), run on the benchmark's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from voice_server.bench.ports import free_port
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import Role, issue_token
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database

__all__ = ["ServerChild", "free_port", "http_get"]

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding voice_server/
HOST = "127.0.0.1"


async def http_get(
    port: int, path: str, *, within: float = 10.0, host: str = HOST
) -> tuple[int, str]:
    """``GET http://<host>:<port><path>`` (default host 127.0.0.1) → (status, body text)."""
    async with asyncio.timeout(within):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            writer.write(request.encode("ascii"))
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body = _unchunk(body)
    return status, body.decode("utf-8", "replace")


def _unchunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)


def pin_to(cores: frozenset[int]) -> Callable[[], None]:
    """A ``preexec_fn`` running the child (and what it starts) on ``cores`` only."""

    def pin() -> None:
        os.sched_setaffinity(0, cores)

    return pin


class ServerChild:
    """``voice-server serve`` in a child process with a fresh data directory and one channel
    (``more_channels`` adds others; ``args`` and ``env`` go to the child as they are)."""

    def __init__(
        self,
        data_dir: Path,
        channel: str,
        *,
        log_level: str = "warning",
        more_channels: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        cores: Sequence[int] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.cores = None if cores is None else frozenset(cores)  # pinned there, with children
        self.channel = channel
        self.channels = [channel, *more_channels]
        self.log_level = log_level
        self.extra_args = list(args)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.media_port = free_port(socket.SOCK_DGRAM)
        self.log_path = data_dir / "server.log"
        self.proc: asyncio.subprocess.Process | None = None
        store = ChannelStore(Database(data_dir / "voice.db"))
        for name in self.channels:
            store.add(name)
        self._key = load_or_create_key(data_dir)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    def token(
        self,
        sub: str,
        ttl_seconds: int = 3600,
        channel: str | None = None,
        role: str = "staff",
        channels: Sequence[str] = (),
    ) -> str:
        """A join token for ``channel`` (default: the first), or for ``channels``."""
        return issue_token(
            self._key,
            sub=sub,
            name=sub,
            channels=list(channels) or [channel or self.channel],
            ttl_seconds=ttl_seconds,
            now=int(time.time()),
            role=Role(role),
        )

    async def start(self, within: float = 30.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        args = ["serve", "--data-dir", str(self.data_dir), "--host", HOST]
        args += ["--port", str(self.port), "--media-host", HOST]
        args += ["--media-port", str(self.media_port), "--log-level", self.log_level]
        args += self.extra_args
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "voice_server.cli",
                *args,
                stdout=log,
                stderr=log,
                env=env,
                preexec_fn=None if self.cores is None else pin_to(self.cores),
            )
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.returncode is not None:
                raise RuntimeError(f"voice-server exited early:\n{self.log()}")
            with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
                status, _ = await http_get(self.port, "/readyz", within=2.0)
                if status == 200:
                    return
            await asyncio.sleep(0.1)
        await self.stop()
        raise RuntimeError(f"voice-server not ready after {within} s:\n{self.log()}")

    async def metrics(self) -> str:
        status, body = await http_get(self.port, "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body

    async def stop(self, within: float = 15.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(within):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""
