"""The aiortc seam that makes the microphone's Opus speech-sized. Fails loudly if aiortc changes."""

from __future__ import annotations

import fractions
import math
import struct

import aiortc
import aiortc.codecs
import av
import pytest
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from voice_client import opus

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)


def tone_frame(index: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="mono", samples=960)
    frame.planes[0].update(
        b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (index * 960 + k) / 48000)))
            for k in range(960)
        )
    )
    frame.sample_rate = 48000
    frame.pts = index * 960
    frame.time_base = fractions.Fraction(1, 48000)
    return frame


def mean_packet_size(encoder: object) -> float:
    sizes = []
    for i in range(50):
        payloads, _ = encoder.encode(tone_frame(i))  # type: ignore[attr-defined]
        sizes += [len(p) for p in payloads]
    return sum(sizes) / len(sizes)


def test_seam_is_pinned_to_the_aiortc_it_was_written_for() -> None:
    assert aiortc.__version__ == opus.SUPPORTED_AIORTC, (
        "aiortc changed: re-check aiortc.codecs.get_encoder/OpusEncoder and RTCRtpSender's "
        "audio-level handling, then update voice_client/opus.py"
    )
    opus.check_aiortc()


def test_aiortc_default_opus_is_the_96_kbps_one_the_seam_replaces() -> None:
    encoder = aiortc.codecs.get_encoder(OPUS)
    assert type(encoder).__name__ == "OpusEncoder"
    assert mean_packet_size(encoder) > 200  # ~300 bytes per 20 ms


def test_speech_opus_makes_small_mono_packets_that_still_decode() -> None:
    with opus.speech_opus(24_000) as cls:
        encoder = aiortc.codecs.get_encoder(OPUS)
    assert isinstance(encoder, cls)
    assert mean_packet_size(encoder) < 100  # ~60 bytes at 24 kbps
    payloads, _ = encoder.encode(tone_frame(50))
    decoded = aiortc.codecs.get_decoder(OPUS).decode(JitterFrame(data=payloads[0], timestamp=0))
    assert isinstance(decoded[0], av.AudioFrame) and decoded[0].samples == 960
    assert type(aiortc.codecs.get_encoder(OPUS)).__name__ == "OpusEncoder"  # restored


def test_speech_opus_rejects_silly_bitrates() -> None:
    with pytest.raises(ValueError), opus.speech_opus(1000):
        pass


def test_aiortc_sender_still_writes_the_audio_level_it_computes() -> None:
    """aiortc 1.16 writes RFC 6464 levels itself for frames it encodes: no seam needed."""
    import inspect

    from aiortc import rtcrtpsender

    source = inspect.getsource(rtcrtpsender.RTCRtpSender)
    assert "compute_audio_level_dbov" in source
    assert "packet.extensions.audio_level = (False, -enc_frame.audio_level)" in source
