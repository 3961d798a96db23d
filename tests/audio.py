"""Test audio: tones written with the stdlib, and a Goertzel detector to check what was heard."""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path


def write_tone(
    path: Path, freq: float, seconds: float, *, rate: int = 48000, amplitude: int = 8000
) -> Path:
    n = int(rate * seconds)
    frames = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * freq * i / rate)))
        for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def read_mono(path: Path) -> tuple[list[int], int]:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        data = w.readframes(w.getnframes())
        return list(struct.unpack(f"<{len(data) // 2}h", data)), w.getframerate()


def goertzel_power(samples: list[int], rate: int, freq: float) -> float:
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return s1 * s1 + s2 * s2 - k * s1 * s2


def loud_part(samples: list[int], rate: int, threshold: int = 1000) -> list[int]:
    """The samples from the first to the last 20 ms block whose peak exceeds ``threshold``."""
    block = rate // 50
    loud = [
        i
        for i in range(0, len(samples) - block, block)
        if max(abs(x) for x in samples[i : i + block]) > threshold
    ]
    if not loud:
        return []
    return samples[loud[0] : loud[-1] + block]


def heard_alone(
    samples: list[int],
    rate: int,
    freq: float,
    others: list[float],
    *,
    window: float = 0.1,
    ratio: float = 20.0,
) -> bool:
    """Whether some ``window``-second stretch carries ``freq`` at ``ratio`` times the power of every
    frequency in ``others``: a short sound (a chime note) found between longer tones, whose phase
    jumps would otherwise leak into the controls over the whole recording."""
    size = int(rate * window)
    hop = max(1, size // 5)
    for start in range(0, len(samples) - size + 1, hop):
        chunk = samples[start : start + size]
        if max(chunk) < 1000:
            continue
        power = goertzel_power(chunk, rate, freq)
        if all(power > ratio * goertzel_power(chunk, rate, f) for f in others):
            return True
    return False


def dominant(samples: list[int], rate: int, candidates: list[float]) -> float | None:
    """Which candidate frequency carries most power in the loud part (None if silent)."""
    part = loud_part(samples, rate)[:rate]  # at most one second
    if len(part) < rate // 10:
        return None
    powers = {f: goertzel_power(part, rate, f) for f in candidates}
    best = max(powers, key=lambda f: powers[f])
    others = sorted(powers.values())[-2] if len(powers) > 1 else 0.0
    return best if powers[best] > 10 * max(others, 1.0) else None


def loud_seconds(samples: list[int], rate: int, threshold: int = 1000) -> float:
    block = rate // 50
    n = sum(
        1
        for i in range(0, len(samples) - block, block)
        if max(abs(x) for x in samples[i : i + block]) > threshold
    )
    return n * 0.02


def write_bursts(
    path: Path,
    freq: float,
    *,
    on_seconds: float,
    off_seconds: float,
    rate: int = 48000,
    amplitude: int = 8000,
    quiet_amplitude: int = 0,
) -> Path:
    """One period of a tone burst then silence (browsers loop their fake microphone file), or
    then the same tone at ``quiet_amplitude`` (still voice to a talk detector)."""

    def tone(n: int, amp: int) -> bytes:
        return b"".join(
            struct.pack("<h", int(amp * math.sin(2 * math.pi * freq * i / rate))) for i in range(n)
        )

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone(int(rate * on_seconds), amplitude))
        w.writeframes(tone(int(rate * off_seconds), quiet_amplitude))
    return path
