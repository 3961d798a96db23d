"""Opus packets → 16-bit mono PCM at the model's rate, once per talker burst (PyAV/libopus).

Fillers (zero-length frames, see :mod:`voice_server.transcribe.packets`) decode as packet-loss
concealment. PCM goes to the recognizer in fixed chunks (:class:`Chunker`), so the live path, the
spool path and :func:`decode_file` give the recognizer identical input, hence identical text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av

__all__ = ["CHUNK_SECONDS", "Chunker", "OpusDecoder", "pcm_of_file"]

CHUNK_SECONDS = 0.2


class OpusDecoder:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._dec = av.CodecContext.create("opus", "r")
        self._dec.sample_rate = 48000
        self._dec.layout = "mono"
        self._res = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def decode(self, packet: bytes) -> bytes:
        out = bytearray()
        try:
            frames = self._dec.decode(av.Packet(packet))
        except av.error.FFmpegError:
            return b""
        for frame in frames:
            for res in self._res.resample(frame):
                out += bytes(res.planes[0])[: res.samples * 2]
        return bytes(out)

    def flush(self) -> bytes:
        out = bytearray()
        for res in self._res.resample(None):
            out += bytes(res.planes[0])[: res.samples * 2]
        return bytes(out)


class Chunker:
    """Regroups PCM into chunks of exactly ``size`` bytes (the last one may be shorter)."""

    def __init__(self, rate: int, seconds: float = CHUNK_SECONDS) -> None:
        self.size = int(rate * seconds) * 2
        self._buf = bytearray()

    def push(self, pcm: bytes) -> Iterator[bytes]:
        self._buf += pcm
        while len(self._buf) >= self.size:
            chunk = bytes(self._buf[: self.size])
            del self._buf[: self.size]
            yield chunk

    def rest(self) -> bytes:
        chunk, self._buf = bytes(self._buf), bytearray()
        return chunk


def pcm_chunks(packets: Iterable[bytes], rate: int) -> Iterator[bytes]:
    """The recognizer's input for a burst, as the pipeline feeds it."""
    dec = OpusDecoder(rate)
    chunker = Chunker(rate)
    for p in packets:
        yield from chunker.push(dec.decode(p))
    yield from chunker.push(dec.flush())
    rest = chunker.rest()
    if rest:
        yield rest


def pcm_of_file(path: Path, rate: int) -> bytes:
    """Any audio file (WAV, Ogg, …) as 16-bit mono PCM at ``rate`` (for asr-eval and tests)."""
    out = bytearray()
    res = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for r in res.resample(frame):
                out += bytes(r.planes[0])[: r.samples * 2]
    for r in res.resample(None):
        out += bytes(r.planes[0])[: r.samples * 2]
    return bytes(out)


__all__ += ["pcm_chunks"]
