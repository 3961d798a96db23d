"""The packet modules stay pure: no event loop, WebRTC stack, codec, web or database imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ["asyncio", "aiortc", "aioice", "av", "fastapi", "sqlite3", "vosk"]
MODULES = ["errors", "demux", "stun", "rtp", "rtcp", "srtp", "dtls", "sdp"]

_PROBE = """
import importlib, json, sys
forbidden, modules, root = json.loads(sys.argv[1])
report = {}
for name in modules:
    mod = importlib.import_module("voice_server.media." + name)
    assert mod.__file__.startswith(root), mod.__file__
    report[name] = sorted(f for f in forbidden if f in sys.modules)
print(json.dumps(report))
"""


def test_packet_modules_import_nothing_forbidden() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([FORBIDDEN, MODULES, str(ROOT)])],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert json.loads(out) == {name: [] for name in MODULES}
