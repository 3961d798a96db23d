"""The low-latency audio seam replaces aiortc's 80 ms receive buffer (aiortc 1.16.0 only)."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterBuffer

from voice_client.jitter import PassThroughJitterBuffer, low_latency_audio


@dataclass
class _Packet:
    sequence_number: int
    timestamp: int
    _data: bytes = b"opus"


def test_every_newer_packet_is_a_frame_at_once() -> None:
    buf = PassThroughJitterBuffer()
    for seq in (10, 11, 13):
        _, frame = buf.add(_Packet(seq, seq * 960))
        assert frame is not None and frame.timestamp == seq * 960


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    buf = PassThroughJitterBuffer()
    buf.add(_Packet(65535, 0))
    assert buf.add(_Packet(0, 960))[1] is not None  # wraps around
    assert buf.add(_Packet(0, 960))[1] is None
    assert buf.add(_Packet(65534, 0))[1] is None
    assert buf.late == 2


def test_the_seam_swaps_only_audio_buffers_and_restores_aiortcs() -> None:
    assert aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer
    with low_latency_audio():
        factory = aiortc.rtcrtpreceiver.JitterBuffer
        assert isinstance(factory(capacity=16, prefetch=4), PassThroughJitterBuffer)
        assert isinstance(factory(capacity=512, is_video=True), JitterBuffer)
    assert aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer


def test_aiortc_still_makes_its_audio_buffer_where_the_seam_expects() -> None:
    source = inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__)
    assert "JitterBuffer(capacity=16, prefetch=4)" in source
