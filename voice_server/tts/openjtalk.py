"""Japanese speech made offline with Open JTalk: the one module for it (tests, benchmarks, and
later spoken announcements).

Uses the ``pyopenjtalk-plus`` wheel (pip extra ``[tts]``), which carries the dictionary and the
HTS voice "Mei" (``mei_normal.htsvoice``, © Nagoya Institute of Technology, MMDAgent Project
Team, CC BY 3.0: credited in the README), and reads kanji with ``sudachidict_core``. Nothing is
downloaded. Synthesis is deterministic (the same text gives the same samples) and takes
~0.1-0.8 s per sentence on one core. Imported lazily: importing this module does not load the
dictionary; the first call does (~0.2 s).

``pcm`` is 16-bit little-endian mono PCM at ``rate`` (48 kHz, the voice's rate).
"""

from __future__ import annotations

import threading
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "RATE",
    "Speech",
    "TtsUnavailable",
    "available",
    "kana",
    "phonemes",
    "synthesize",
    "write_wav",
]

RATE = 48000
_lock = threading.Lock()  # one global Open JTalk instance inside the wheel


class TtsUnavailable(Exception):
    """pyopenjtalk-plus is not installed (one line for the user)."""


@dataclass(frozen=True, slots=True)
class Speech:
    pcm: bytes
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.pcm) / 2 / self.rate


def _module() -> Any:
    try:
        import pyopenjtalk
    except ImportError:
        raise TtsUnavailable(
            "Japanese speech needs pyopenjtalk-plus: pip install 'voice-server[tts]'"
        ) from None
    return pyopenjtalk


def available() -> bool:
    try:
        _module()
    except TtsUnavailable:
        return False
    return True


def synthesize(text: str, *, speed: float = 1.0, gain: float = 1.0) -> Speech:
    """One sentence of Japanese as 48 kHz 16-bit mono PCM."""
    import numpy as np

    jtalk = _module()
    with _lock:
        wave_f64, rate = jtalk.tts(text, speed=speed)
    samples = np.clip(np.asarray(wave_f64) * gain, -32768, 32767).astype("<i2")
    return Speech(samples.tobytes(), int(rate))


def kana(text: str) -> str:
    """The reading in katakana (Open JTalk's g2p): for a kana CER that does not count kanji
    choices (避難所/批難所) as errors."""
    jtalk = _module()
    with _lock:
        return str(jtalk.g2p(text, kana=True))


def phonemes(text: str) -> str:
    """The reading as Open JTalk's phonemes (``h i n a N j o e i`` for 避難所A): empty when
    there is nothing it can read aloud."""
    jtalk = _module()
    with _lock:
        return str(jtalk.g2p(text))


def write_wav(
    path: Path,
    sentences: Sequence[str],
    *,
    gap_seconds: float = 1.0,
    lead_seconds: float = 0.0,
    speed: float = 1.0,
) -> Path:
    """A WAV of the sentences, ``gap_seconds`` of silence between (and after) them."""
    silence = b"\0\0" * int(RATE * gap_seconds)
    frames = bytearray(b"\0\0" * int(RATE * lead_seconds))
    for text in sentences:
        speech = synthesize(text, speed=speed)
        frames += speech.pcm + silence
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(bytes(frames))
    return path
