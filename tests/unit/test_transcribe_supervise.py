"""The supervised transcriber sidecar runs at a lower CPU priority than the server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from voice_server.transcribe.supervise import SIDECAR_NICE, TranscriberSupervisor


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19


async def test_the_sidecar_is_started_niced() -> None:
    supervisor = TranscriberSupervisor([sys.executable, "-c", "import time; time.sleep(30)"])
    supervisor.start()
    try:
        for _ in range(100):
            if supervisor.proc is not None:
                break
            await asyncio.sleep(0.02)
        assert supervisor.proc is not None
        await asyncio.sleep(0.1)
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + SIDECAR_NICE)
        assert _nice(supervisor.proc.pid) == expected
    finally:
        await supervisor.stop()
