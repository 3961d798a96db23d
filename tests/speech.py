"""Synthetic Korean speech for transcription tests (espeak-ng), joined with silences."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest

SENTENCES = [
    "안녕하세요 동쪽 문에서 물이 새고 있습니다",
    "오늘 회의는 세 시에 시작합니다",
    "대피소에 담요가 더 필요합니다",
]


def speech_wav(path: Path, sentences: list[str], *, gap_seconds: float = 1.5) -> Path:
    """One WAV: each sentence spoken by espeak-ng, ``gap_seconds`` of silence between them."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/install-test-deps.sh installs it)")
    frames = b""
    rate = 22050
    for i, text in enumerate(sentences):
        part = path.with_suffix(f".{i}.wav")
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(part), text], check=True)
        with wave.open(str(part), "rb") as w:
            rate = w.getframerate()
            frames += w.readframes(w.getnframes())
        part.unlink()
        frames += b"\0\0" * int(rate * gap_seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path
