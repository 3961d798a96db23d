"""Direct decoding: a whole file or packet list through one recognizer, the way the pipeline
feeds it (same decoder, same chunks). ``asr-eval``, the tests and the benchmark compare the
pipeline's text with this."""

from __future__ import annotations

from pathlib import Path

from voice_server.calllog.ogg import OggError, read_ogg_opus
from voice_server.transcribe.decoder import Chunker, pcm_chunks, pcm_of_file
from voice_server.transcribe.recognizer import RecognizerFactory, RecResult

__all__ = ["recognize_file", "recognize_packets", "recognize_pcm"]


def recognize_packets(
    factory: RecognizerFactory, packets: list[bytes], phrases: list[str] | None = None
) -> RecResult:
    rec = factory.create(phrases)
    try:
        for chunk in pcm_chunks(packets, factory.sample_rate):
            rec.accept(chunk)
        return rec.final()
    finally:
        rec.close()


def recognize_pcm(
    factory: RecognizerFactory, pcm: bytes, phrases: list[str] | None = None
) -> RecResult:
    rec = factory.create(phrases)
    try:
        chunker = Chunker(factory.sample_rate)
        for chunk in chunker.push(pcm):
            rec.accept(chunk)
        rest = chunker.rest()
        if rest:
            rec.accept(rest)
        return rec.final()
    finally:
        rec.close()


def recognize_file(
    factory: RecognizerFactory, path: Path, phrases: list[str] | None = None
) -> RecResult:
    """An Ogg Opus file is decoded packet by packet like the pipeline; anything else by PyAV."""
    data = path.read_bytes()
    if data[:4] == b"OggS":
        try:
            return recognize_packets(factory, list(read_ogg_opus(data).packets), phrases)
        except OggError:
            pass
    return recognize_pcm(factory, pcm_of_file(path, factory.sample_rate), phrases)
