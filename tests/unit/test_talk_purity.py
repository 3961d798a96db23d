"""The per-packet talk modules stay pure: no asyncio, aiortc, av or other I/O imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = [
    "voice_server/talk/detector.py",
    "voice_server/talk/slots.py",
    "voice_server/media/slot_stream.py",
]
FORBIDDEN = {"asyncio", "aiortc", "aioice", "av", "fastapi", "sqlite3", "vosk", "socket"}


@pytest.mark.parametrize("path", PURE)
def test_talk_module_imports_nothing_with_io(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN
