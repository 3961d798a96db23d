"""The supervised transcriber sidecar runs at a lower CPU priority than the server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from voice_server.transcribe.supervise import SIDECAR_NICE, TranscriberSupervisor


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
        stat = Path(f"/proc/{supervisor.proc.pid}/stat").read_text(encoding="ascii")
        fields = stat.rsplit(")", 1)[1].split()
        expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + SIDECAR_NICE)
        assert int(fields[16]) == expected  # field 19: nice
    finally:
        await supervisor.stop()
