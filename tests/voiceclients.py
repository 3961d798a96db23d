"""Run real `voice-client` processes (standard aiortc peers) against a test server."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess


@dataclass
class ClientRun:
    """A running client; its stdout (one JSON event per line) is read as it comes."""

    name: str
    proc: subprocess.Popen[str]
    record: Path | None
    stdout: str = ""
    stderr: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    on_line: list[Callable[[str], None]] = field(default_factory=list)  # called as lines come
    _lines: list[str] = field(default_factory=list)
    _arrived: list[float] = field(default_factory=list)  # time.monotonic() of each line, here
    _reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._arrived.append(time.monotonic())
            self._lines.append(line)
            for callback in list(self.on_line):
                callback(line)

    def _parse(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self._lines) if line.startswith("{")]

    def wait_event(self, event: str, timeout: float = 30, **match: Any) -> dict[str, Any]:
        """Block until the client has printed ``event`` (with ``match`` fields)."""
        return self.wait_arrival(event, timeout, **match)[1]

    def wait_arrival(
        self,
        event: str,
        timeout: float = 30,
        when: Callable[[dict[str, Any]], bool] = lambda e: True,
        **match: Any,
    ) -> tuple[float, dict[str, Any]]:
        """Block until the client has printed ``event`` (with ``match`` fields, and ``when``
        true of it); the ``time.monotonic()`` at which its line came here, and the event."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = list(zip(list(self._arrived), list(self._lines), strict=False))
            for arrived, line in lines:
                e = json.loads(line) if line.startswith("{") else {}
                if e.get("event") == event and all(e.get(k) == v for k, v in match.items()):
                    if when(e):
                        return arrived, e
            if self.proc.poll() is not None and self._reader and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {event} event within {timeout} s")

    def wait(self, timeout: float = 60) -> int:
        self.proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(10)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        self.stdout = "".join(self._lines)
        self.events = self._parse()
        return self.proc.returncode

    def seen(self, event: str) -> list[dict[str, Any]]:
        """The ``event`` events printed so far (while the client runs)."""
        return [e for e in self._parse() if e.get("event") == event]

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == event]


def start_client(
    server: ServerProcess,
    workdir: Path,
    name: str,
    *,
    channel: str = "ops",
    play: Path | None = None,
    record: bool = True,
    duration: float = 8.0,
    loop: bool = False,
    device_id: str | None = None,
    extra_args: list[str] | None = None,
    stdin: int | None = None,
) -> ClientRun:
    token = server.token(name, channel)
    rec = workdir / f"{name}.wav" if record else None
    cmd = [
        sys.executable,
        "-m",
        "voice_client.cli",
        "--server",
        server.url,
        "--channel",
        channel,
        "--token",
        token,
        "--duration",
        str(duration),
        "--device-id",
        device_id or name,
    ]
    if play is not None:
        cmd += ["--play", str(play)]
    if loop:
        cmd += ["--loop"]
    if rec is not None:
        cmd += ["--record", str(rec)]
    cmd += extra_args or []
    proc = subprocess.Popen(
        cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return ClientRun(name, proc, rec)
