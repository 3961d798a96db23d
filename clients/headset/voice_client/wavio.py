"""WAV in and out for the headset client, in the one format the client works in.

The client's audio is 48 kHz, mono, signed 16-bit little-endian PCM ("PCM48"): what WebRTC's
Opus runs at, and what ``--record`` writes. Reading accepts anything FFmpeg (bundled with PyAV)
decodes and converts it with PyAV's resampler; writing uses the stdlib :mod:`wave`.

:class:`Mix` places chunks of PCM48 at absolute sample positions (one source per heard slot) and
sums them, clipping to 16 bits, into one track.
"""

from __future__ import annotations

import sys
import wave
from array import array
from collections.abc import Iterator
from pathlib import Path

import av

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Mix",
    "WavError",
    "frames_20ms",
    "read_pcm48",
    "write_wav",
]

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2
_BIG_ENDIAN = sys.byteorder == "big"


class WavError(Exception):
    """An audio file could not be read or written; the message is one line for the user."""


def read_pcm48(path: str | Path) -> bytes:
    """Decode an audio file (any rate, channels or sample format) to PCM48 mono s16le."""
    p = Path(path)
    if not p.is_file():
        raise WavError(f"audio file not found: {p}")
    out = bytearray()
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise WavError(f"no audio stream in {p}")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    out += bytes(converted.planes[0])[: converted.samples * 2]
            for converted in resampler.resample(None):
                out += bytes(converted.planes[0])[: converted.samples * 2]
    except av.FFmpegError as exc:
        raise WavError(f"cannot decode {p}: {exc}") from None
    if _BIG_ENDIAN:  # FFmpeg's s16 is native-endian
        samples = array("h", out)
        samples.byteswap()
        return samples.tobytes()
    return bytes(out)


def frames_20ms(pcm: bytes) -> Iterator[bytes]:
    """Split PCM48 into 20 ms frames (1920 bytes), the last one padded with silence."""
    for start in range(0, len(pcm), FRAME_BYTES):
        chunk = pcm[start : start + FRAME_BYTES]
        if len(chunk) < FRAME_BYTES:
            chunk += bytes(FRAME_BYTES - len(chunk))
        yield chunk


def write_wav(path: str | Path, pcm: bytes, rate: int = SAMPLE_RATE) -> None:
    """Write mono s16le ``pcm`` as a 16-bit WAV file."""
    try:
        with open(path, "wb") as f, wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
    except OSError as exc:
        raise WavError(f"cannot write {path}: {exc.strerror or exc}") from None


class Mix:
    """Sum of PCM48 chunks placed at absolute sample positions (0 = the start of recording)."""

    __slots__ = ("_chunks",)

    def __init__(self) -> None:
        self._chunks: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        """Length of the mix in samples."""
        return max((pos + len(pcm) // 2 for pos, pcm in self._chunks), default=0)

    def add(self, position: int, pcm: bytes) -> None:
        """Place ``pcm`` (s16le mono) starting at sample ``position`` (clipped at 0)."""
        if position < 0:
            pcm = pcm[-2 * position :]
            position = 0
        if pcm:
            self._chunks.append((position, pcm))

    def render(self) -> bytes:
        """The mixed track as s16le bytes; overlapping chunks are summed and clipped."""
        acc = array("h", bytes(2 * len(self)))
        for pos, pcm in self._chunks:
            samples = array("h", pcm)
            if _BIG_ENDIAN:
                samples.byteswap()
            end = pos + len(samples)
            if not any(acc[pos:end]):
                acc[pos:end] = samples  # nothing there yet: copy at C speed
                continue
            for i, s in enumerate(samples, pos):
                v = acc[i] + s
                acc[i] = 32767 if v > 32767 else -32768 if v < -32768 else v
        if _BIG_ENDIAN:
            acc.byteswap()
        return acc.tobytes()
