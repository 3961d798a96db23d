"""Helpers for transcription tests: Opus packets, RTP with audio levels, a fake recognizer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import av

from voice_server.calllog.model import Word
from voice_server.media.rtp import build_rtp
from voice_server.transcribe.recognizer import RecResult


def opus_tone(seconds: float, freq: float = 440.0) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 24000
    out: list[bytes] = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(
            b"".join(
                int(8000 * math.sin(2 * math.pi * freq * (i * 960 + k) / 48000)).to_bytes(
                    2, "little", signed=True
                )
                for k in range(960)
            )
        )
        frame.sample_rate = 48000
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def rtp(seq: int, payload: bytes, *, level: int = 20, ssrc: int = 1234) -> bytes:
    return build_rtp(
        payload_type=111,
        seq=seq,
        timestamp=seq * 960,
        ssrc=ssrc,
        payload=payload,
        audio_level=(False, level),
    )


class FakeRecognizer:
    def __init__(self, phrases: list[str] | None) -> None:
        self.bytes = 0
        self.chunks: list[int] = []
        self.phrases = phrases
        self.closed = 0

    def accept(self, pcm: bytes) -> None:
        self.bytes += len(pcm)
        self.chunks.append(len(pcm))

    def partial(self) -> str:
        return f"partial {self.bytes}"

    def final(self) -> RecResult:
        return RecResult(f"heard {self.bytes // 32000} s", (Word("heard", 0.0, 0.5, 0.9),))

    def close(self) -> None:
        self.closed += 1


@dataclass
class FakeFactory:
    name: str = "fake-model"
    language: str = "ja"
    sample_rate: int = 16000
    made: list[FakeRecognizer] = field(default_factory=list)

    def create(self, phrases: list[str] | None = None) -> FakeRecognizer:
        rec = FakeRecognizer(phrases)
        self.made.append(rec)
        return rec
