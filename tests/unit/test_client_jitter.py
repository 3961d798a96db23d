"""The headset's receive seam: its reordering buffer and concealing Opus decoder in aiortc
(aiortc 1.16.0 only), with real Opus packets from libopus (PyAV) for the decoder."""

from __future__ import annotations

import array
import inspect
import math
from dataclasses import dataclass

import aiortc.codecs
import aiortc.rtcrtpreceiver
import av
import pytest
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame

from voice_client.jitter import (
    ConcealingOpusDecoder,
    FrameBatch,
    ReorderJitterBuffer,
    low_latency_audio,
)
from voice_client.reorder import Out, ReorderWindow


@dataclass
class _Packet:
    sequence_number: int
    timestamp: int
    _data: bytes = b"opus"
    ssrc: int = 1


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_buffer_hands_aiortc_one_batch_per_packet_in_order() -> None:
    clock = _Clock()
    buf = ReorderJitterBuffer(ReorderWindow(depth_ms=60), clock=clock)
    _, first = buf.add(_Packet(10, 9600, b"a"))
    assert isinstance(first, FrameBatch) and first.timestamp == 9600
    clock.now = 0.02
    assert buf.add(_Packet(12, 11520, b"c")) == (False, None)  # waits for 11
    clock.now = 0.03
    _, batch = buf.add(_Packet(11, 10560, b"b"))
    assert isinstance(batch, FrameBatch)
    assert [o.payload for o in batch.items] == [b"b", b"c"]
    assert batch.timestamp == batch.rtp_timestamp == 10560 and batch.data == b"b"


def test_the_seam_swaps_audio_buffers_and_the_decoder_and_restores_aiortcs() -> None:
    assert aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer
    assert aiortc.codecs.OpusDecoder is OpusDecoder
    with low_latency_audio(40) as stats:
        factory = aiortc.rtcrtpreceiver.JitterBuffer
        audio = factory(capacity=16, prefetch=4)
        assert isinstance(audio, ReorderJitterBuffer) and audio.window.depth_ms == 40
        assert isinstance(factory(capacity=512, is_video=True), JitterBuffer)
        assert aiortc.codecs.OpusDecoder is ConcealingOpusDecoder
        other = factory(capacity=16, prefetch=4)
        audio.add(_Packet(1, 960))
        other.add(_Packet(7, 960))
        assert stats.totals()["frames"] == 2 and stats.totals()["packets"] == 2
    assert aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer
    assert aiortc.codecs.OpusDecoder is OpusDecoder


def test_a_depth_out_of_range_patches_nothing() -> None:
    with pytest.raises(ValueError), low_latency_audio(500):
        pass
    assert aiortc.rtcrtpreceiver.JitterBuffer is JitterBuffer


def test_aiortc_still_makes_and_uses_its_audio_buffer_and_decoder_where_the_seam_expects() -> None:
    receiver = aiortc.rtcrtpreceiver.RTCRtpReceiver
    assert "JitterBuffer(capacity=16, prefetch=4)" in inspect.getsource(receiver.__init__)
    handle = inspect.getsource(receiver._handle_rtp_packet)
    assert "self.__jitter_buffer.add(packet)" in handle
    assert "self.__timestamp_mapper.map(" in handle
    assert "self.__decoder_queue.put((codec, encoded_frame))" in handle
    worker = inspect.getsource(aiortc.rtcrtpreceiver.decoder_worker)
    assert "get_decoder(codec)" in worker and "decoder.decode(encoded_frame)" in worker
    assert "return OpusDecoder()" in inspect.getsource(aiortc.codecs.get_decoder)


def _opus_packets(count: int) -> list[bytes]:
    """A 440 Hz tone, 20 ms Opus packets with in-band FEC, from libopus (PyAV)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 32000
    enc.options = {"fec": "1", "packet_loss": "20"}
    out: list[bytes] = []
    for i in range(count):
        tone = array.array(
            "h",
            (int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + j) / 48000)) for j in range(960)),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(tone.tobytes())
        frame.sample_rate = 48000
        frame.pts = i * 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def _peak(frame: av.AudioFrame) -> int:
    return max(abs(x) for x in array.array("h", bytes(frame.planes[0])))


def test_the_decoder_plays_packets_conceals_and_recovers_from_fec() -> None:
    packets = _opus_packets(12)
    dec = ConcealingOpusDecoder()
    warm = FrameBatch([Out(i * 960, packets[i]) for i in range(8)])
    assert len(dec.decode(warm)) == 8
    batch = FrameBatch(
        [
            Out(8 * 960, None, 960),  # concealed
            Out(9 * 960, None, 960, fec=packets[10]),  # from packet 10's FEC
            Out(10 * 960, packets[10]),
            Out(11 * 960, packets[11]),
        ]
    )
    batch.timestamp = 5000  # what aiortc's timestamp mapper makes of the first
    frames = dec.decode(batch)
    assert [f.pts for f in frames] == [5000, 5960, 6920, 7880]
    assert all(f.samples == 960 and f.format.name == "s16" for f in frames)
    assert all(f.layout.name == "stereo" and f.sample_rate == 48000 for f in frames)
    assert all(_peak(f) > 1000 for f in frames)  # the tone goes on through the fills
    plain = dec.decode(JitterFrame(packets[11], 123))
    assert len(plain) == 1 and plain[0].pts == 123


def test_a_packet_libopus_refuses_is_skipped_not_fatal() -> None:
    dec = ConcealingOpusDecoder()
    frames = dec.decode(FrameBatch([Out(0, b"\xff\xff\xff"), Out(960, None, 960)]))
    assert len(frames) == 1
