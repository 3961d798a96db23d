"""The transcriber sidecar runs at a lower CPU priority than the server."""

from __future__ import annotations

import asyncio
import os
import subprocess
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


def test_the_sidecar_lowers_itself_to_idle_scheduling() -> None:
    code = (
        "import os; from voice_server.transcribe.commands import lower_priority; "
        "print(lower_priority('idle'), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["idle", "True"]
    code = "import os; from voice_server.transcribe.commands import lower_priority; "
    code += "n = os.nice(0); print(lower_priority('low'), os.nice(0) - n)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "low" and int(out.stdout.split()[1]) in (10, 19 - os.nice(0))
