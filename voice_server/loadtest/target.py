"""The server under test: one the load test starts itself, or one already running.

- **Started** (no ``--url``): ``voice-server serve`` as a child process on free local ports with
  a throw-away data directory holding the plan's channels (:class:`~voice_server.bench.
  serverproc.ServerChild`, as ``bench forward`` does). Transcription on: ``--transcriber`` (the
  router taps every talk burst into the spool, the sidecar transcribes); off: ``call_log =
  false`` (voice only: no tap, no spool writing, no sidecar). The load test mints tokens with
  that directory's key.
- **Running** (``--url URL --data-dir D``): a server on this machine; the load test needs its
  data directory for the signing key (tokens) and adds the plan's channels to its database
  (the server reads channels at each join). Its pid, for the ``/proc`` figures, is
  ``--server-pid`` or found from the URL's port: the process holding the listening TCP socket
  (``/proc/net/tcp*`` inode → ``/proc/<pid>/fd``). The server must be in token-only mode (no
  accounts), else the simulated users are refused as ``user_unknown``.

Either way, the transcriber sidecar is found as a child process of the server (``/proc/*/stat``
parent pid), so its CPU and memory are reported apart from the server's.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

from voice_server.bench.serverproc import ServerChild, http_get
from voice_server.identity.keys import KEY_FILE, load_or_create_key
from voice_server.identity.tokens import issue_token
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database

__all__ = ["RunningServer", "StartedServer", "child_pids", "listener_pid"]

TOKEN_TTL = 6 * 3600
SCRAPE = 30.0  # seconds a /metrics scrape may take before the server counts as overloaded


async def _scrape(get: Callable[[], Awaitable[str]]) -> str:
    try:
        async with asyncio.timeout(SCRAPE):
            return await get()
    except TimeoutError:
        raise RuntimeError(
            f"the server did not answer /metrics within {SCRAPE:.0f} s (overloaded?)"
        ) from None


def listener_pid(port: int) -> int | None:
    """The pid of the process with a listening TCP socket on ``port`` (None when not found)."""
    inodes: set[str] = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path, encoding="ascii") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    if not wanted:
        return None
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
            except OSError:
                continue
    return None


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (from ``/proc/<pid>/stat``)."""
    out = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[1]) == parent:
            out.append(pid)
    return out


MEDIA_WORKER_MODULE = "voice_server.workers.media_worker"


def media_worker_pids(parent: int) -> list[int]:
    """The media workers of a ``serve --workers N`` parent (its children running
    :data:`MEDIA_WORKER_MODULE`; the transcriber sidecar is a child too, and is not one)."""
    out = []
    for pid in child_pids(parent):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if MEDIA_WORKER_MODULE.encode() in argv:
            out.append(pid)
    return sorted(out)


class StartedServer:
    """A ``voice-server serve`` child with the plan's channels (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        channels: list[str],
        *,
        transcribe: bool,
        debug_objects: bool = False,
        log_level: str = "warning",
    ) -> None:
        env = {"VOICE_DEBUG_OBJECTS": "1"} if debug_objects else {}
        if not transcribe:
            env["VOICE_CALL_LOG"] = "0"  # voice only: no spool, no sidecar
        self.child = ServerChild(
            data_dir,
            channels[0],
            log_level=log_level,
            more_channels=channels[1:],
            args=["--transcriber"] if transcribe else [],
            env=env,
        )
        self.started = True

    async def start(self) -> None:
        await self.child.start()

    @property
    def pid(self) -> int | None:
        return self.child.pid

    @property
    def ws_url(self) -> str:
        return self.child.ws_url

    @property
    def media_port(self) -> int | None:
        return self.child.media_port

    def token(self, sub: str, channel: str) -> str:
        return self.child.token(sub, TOKEN_TTL, channel=channel)

    async def metrics(self) -> str:
        async def get() -> str:
            status, body = await http_get(self.child.port, "/metrics", within=SCRAPE)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
            return body

        return await _scrape(get)

    async def stop(self) -> int | None:
        return await self.child.stop()

    def log(self) -> str:
        return self.child.log()


class RunningServer:
    """A server that is already running on this machine (see the module docstring)."""

    def __init__(
        self, url: str, data_dir: Path, channels: list[str], *, pid: int | None = None
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "ws") or not parts.hostname:
            raise ValueError("--url must be http://HOST:PORT or ws://HOST:PORT/ws (plain HTTP)")
        self.host = parts.hostname
        self.port = parts.port or 80
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.ws_url = f"ws://{netloc}:{self.port}/ws"
        if not (data_dir / KEY_FILE).exists():
            raise ValueError(f"no signing key in {data_dir}: --data-dir must be the server's")
        self._key = load_or_create_key(data_dir)
        store = ChannelStore(Database(data_dir / "voice.db"))
        for name in channels:
            if store.get(name) is None:
                store.add(name)
        self.pid = pid if pid is not None else listener_pid(self.port)
        self.media_port: int | None = None  # unknown: kernel drops on it are not reported
        self.started = False

    async def start(self) -> None:
        status, _ = await http_get(self.port, "/readyz", host=self.host)
        if status != 200:
            raise RuntimeError(f"{self.ws_url}: /readyz answered {status}")

    def token(self, sub: str, channel: str) -> str:
        return issue_token(
            self._key,
            sub=sub,
            name=sub,
            channels=[channel],
            ttl_seconds=TOKEN_TTL,
            now=int(time.time()),
        )

    async def metrics(self) -> str:
        async def get() -> str:
            status, body = await http_get(self.port, "/metrics", host=self.host, within=SCRAPE)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
            return body

        return await _scrape(get)

    async def stop(self) -> int | None:
        return None

    def log(self) -> str:
        return ""
