"""``serve --transcriber``: the server starts the transcriber sidecar as a child process and
restarts it when it exits (1 s, doubling to 30 s). Used by ``make run`` so that a new user gets a
working call log with one command; a deployment runs the sidecar as its own service instead.

The sidecar runs at a lower CPU priority (``nice`` +10, :data:`SIDECAR_NICE`): recognition is
batch work that may fall behind (it catches up from the spool), voice on the same machine may
not (measured with ``voice-server loadtest --transcribe on``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from voice_server.config import Config

__all__ = ["TranscriberSupervisor"]

log = logging.getLogger(__name__)

SIDECAR_NICE = 10


class TranscriberSupervisor:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.restarts = 0

    @classmethod
    def from_config(cls, config: Config) -> TranscriberSupervisor | None:
        if not config.transcriber:
            return None
        host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
        if ":" in host:
            host = f"[{host}]"
        argv = [
            sys.executable,
            "-m",
            "voice_server.cli",
            "transcriber",
            "--server",
            f"http://{host}:{config.port}",
            "--data-dir",
            str(config.data_dir),
            "--models-dir",
            str(config.models_dir),
            "--log-level",
            config.log_level,
        ]
        if config.model:
            argv += ["--model", config.model]
        argv += ["--engine", config.asr_engine]
        if config.asr_language:
            argv += ["--language", config.asr_language]
        return cls(argv)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="transcriber-supervisor")

    async def _run(self) -> None:
        delay = 1.0
        while True:
            self.proc = await asyncio.create_subprocess_exec(*self.argv)
            with contextlib.suppress(OSError, AttributeError):  # before it starts its threads
                os.setpriority(os.PRIO_PROCESS, self.proc.pid, SIDECAR_NICE)
            log.info("transcriber started", extra={"pid": self.proc.pid})
            code = await self.proc.wait()
            log.warning("transcriber exited; restarting", extra={"code": code, "delay": delay})
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
