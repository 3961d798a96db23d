"""``serve --transcriber``: the server starts the transcriber sidecar as a child process and
restarts it when it exits (1 s, doubling to 30 s). Used by ``make run`` so that a new user gets a
working call log with one command; a deployment runs the sidecar as its own service instead.

The child reaches the server the way the server speaks: over HTTPS when the server has a
certificate (trusting exactly that certificate, ``--ca-file``, and checking a name it holds,
``--tls-server-name``, when it does not name 127.0.0.1), over HTTP otherwise.

The child runs at ``--cpu-priority low`` (nice +10): recognition is batch work that may fall
behind (it catches up from the spool), voice on the same machine may not. ``idle``
(``SCHED_IDLE``) starved it on a busy machine: the live path then looked dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from pathlib import Path

from voice_server.config import Config
from voice_server.tlscert import certificate_names

__all__ = ["SIDECAR_PRIORITY", "TranscriberSupervisor", "link_target"]

log = logging.getLogger(__name__)

SIDECAR_PRIORITY = "low"
PROVEN_SECONDS = 60.0


def link_target(config: Config) -> list[str]:
    """The ``--server`` (and TLS) arguments with which a child on this machine reaches us."""
    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    shown = f"[{host}]" if ":" in host else host
    if config.tls_cert is None:
        return ["--server", f"http://{shown}:{config.port}"]
    args = ["--server", f"https://{shown}:{config.port}", "--ca-file", str(config.tls_cert)]
    try:
        dns, ips = certificate_names(Path(config.tls_cert))
    except (OSError, ValueError):
        return args  # the server itself will refuse this certificate; nothing to add
    if host in ips or host in dns:
        return args
    if "localhost" in dns and host in ("127.0.0.1", "::1"):
        return [*args, "--tls-server-name", "localhost"]
    concrete = [n for n in dns if not n.startswith("*.")]
    if concrete:
        return [*args, "--tls-server-name", concrete[0]]
    wildcard = [n for n in dns if n.startswith("*.")]
    if wildcard:
        return [*args, "--tls-server-name", "transcriber" + wildcard[0][1:]]
    return args


class TranscriberSupervisor:
    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env  # None: this process's environment
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at: float | None = None  # monotonic time the current child started
        self.last_run_s: float | None = None  # how long the previous child ran

    @classmethod
    def from_config(cls, config: Config) -> TranscriberSupervisor | None:
        if not config.transcriber:
            return None
        argv = [
            sys.executable,
            "-m",
            "voice_server.cli",
            "transcriber",
            *link_target(config),
            "--data-dir",
            str(config.data_dir),
            "--models-dir",
            str(config.models_dir),
            "--log-level",
            config.log_level,
            "--cpu-priority",
            SIDECAR_PRIORITY,
        ]
        if config.model:
            argv += ["--model", config.model]
        argv += ["--engine", config.asr_engine]
        if config.asr_language:
            argv += ["--language", config.asr_language]
        env = None
        if config.database_url:  # in the environment, not argv: a URL may hold a password
            env = {**os.environ, "VOICE_DATABASE_URL": config.database_url}
        return cls(argv, env)

    @property
    def running(self) -> bool:
        """A child runs and is not in a crash loop (one that died within a minute of its
        start counts as not running until its successor has lasted a minute or linked)."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        if self.last_run_s is not None and self.last_run_s < PROVEN_SECONDS:
            return self.started_at is not None and (
                time.monotonic() - self.started_at >= PROVEN_SECONDS
            )
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="transcriber-supervisor")

    async def _run(self) -> None:
        delay = 1.0
        while True:
            self.proc = await asyncio.create_subprocess_exec(*self.argv, env=self.env)
            self.started_at = time.monotonic()
            log.info("transcriber started", extra={"pid": self.proc.pid})
            code = await self.proc.wait()
            self.last_exit = code
            self.last_run_s = time.monotonic() - self.started_at
            if self.last_run_s >= PROVEN_SECONDS:
                delay = 1.0  # it had been running fine: a fresh failure, not a crash loop
            log.warning(
                "transcriber exited with code %s; restarting in %.0f s",
                code,
                delay,
                extra={"code": code, "delay": delay},
            )
            self.restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        proc = self.proc
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
