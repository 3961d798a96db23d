"""Real server processes for integration tests: started on free ports on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from voice_server.bench.ports import free_port


class _PortTaken(RuntimeError):
    """The server could not bind a port drawn for it: another process took it meanwhile."""


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    media_port: int
    env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    tls: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        if self.tls:  # the certificate is not trusted here: ask over a raw TLS socket
            import socket
            import ssl

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as raw:
                    with ctx.wrap_socket(raw) as tls_sock:
                        tls_sock.sendall(b"GET /readyz HTTP/1.0\r\n\r\n")
                        return b" 200 " in tls_sock.recv(64)
            except OSError:
                return False
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        return False

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "voice_server.cli", *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **self.env},
        )
        return out.stdout.strip()

    def token(self, name: str, *channels: str, **opts: str) -> str:
        args = ["token", "--name", name]
        for c in channels or ("ops",):
            args += ["--channel", c]
        for k, v in opts.items():
            args += [f"--{k}", v]
        return self.cli(*args)

    def start(self, timeout: float = 60.0) -> None:
        """Start ``serve`` and wait until it is ready. Its ports were free when drawn, but
        another process (a parallel test worker, a node's own connections to Redis or
        PostgreSQL) may take one from the kernel's ephemeral range before this binds it: then
        the server exits on "Address already in use" and is started again on fresh ports."""
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return
            except _PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
                self.media_port = free_port(socket.SOCK_DGRAM)

    def _start_once(self, timeout: float) -> None:
        self.log_path = self.data_dir / f"server-{self.port}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        cmd = [
            sys.executable,
            "-m",
            "voice_server.cli",
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--media-port",
            str(self.media_port),
            *self.extra_args,
        ]
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_bytes()[offset:]
                if b"[Errno 98] Address already in use" in tail:
                    self.proc = None
                    raise _PortTaken(tail.decode(errors="replace"))
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"server not ready:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""


@contextlib.contextmanager
def running_server(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    channels: tuple[str, ...] = ("ops", "hq"),
    extra_args: list[str] | None = None,
    tls: bool = False,
) -> Iterator[ServerProcess]:
    server = ServerProcess(
        data_dir, free_port(), free_port(socket.SOCK_DGRAM), env or {}, extra_args or [], tls=tls
    )
    for c in channels:
        server.cli("channels", "add", c)
    server.start()
    try:
        yield server
    finally:
        server.stop()
