"""Run real `voice-client` processes (standard aiortc peers) against a test server."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess


@dataclass
class ClientRun:
    name: str
    proc: subprocess.Popen[str]
    record: Path | None
    stdout: str = ""
    stderr: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def wait(self, timeout: float = 60) -> int:
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        self.events = [
            json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")
        ]
        return self.proc.returncode

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
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return ClientRun(name, proc, rec)
