"""The LBRR flag reader against packets from the real Opus encoder (libopus through PyAV)."""

from __future__ import annotations

import math
from array import array

import av
import pytest

from voice_server.media.opus_fec import has_fec


def speechlike(seconds: float) -> bytes:
    """A voiced, syllable-modulated signal (SILK codes it; silence would carry no LBRR)."""
    n = int(48000 * seconds)
    out = array("h")
    for i in range(n):
        t = i / 48000
        envelope = 0.5 + 0.5 * math.sin(2 * math.pi * 4 * t)
        f0 = 140 + 30 * math.sin(2 * math.pi * 0.7 * t)
        v = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in range(1, 8))
        out.append(int(6000 * envelope * v / 2))
    return out.tobytes()


def encode(pcm: bytes, options: dict[str, str]) -> list[bytes]:
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate = 48000
    ctx.layout = "mono"
    ctx.format = "s16"
    ctx.bit_rate = 32000
    ctx.options = {"application": "voip", **options}
    ctx.open()
    packets: list[bytes] = []
    for i in range(0, len(pcm) // 2 - 960, 960):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.sample_rate = 48000
        frame.planes[0].update(pcm[2 * i : 2 * (i + 960)])
        frame.pts = i
        packets.extend(bytes(p) for p in ctx.encode(frame))
    return packets


@pytest.fixture(scope="module")
def pcm() -> bytes:
    return speechlike(3.0)


def test_no_fec_without_expected_loss(pcm: bytes) -> None:
    for options in ({"fec": "0", "packet_loss": "10"}, {"fec": "1", "packet_loss": "0"}):
        packets = encode(pcm, options)
        assert packets and not any(has_fec(p) for p in packets), options


def test_fec_is_seen_once_the_encoder_expects_loss(pcm: bytes) -> None:
    packets = encode(pcm, {"fec": "1", "packet_loss": "10"})
    flags = [has_fec(p) for p in packets]
    assert None not in flags  # SILK or hybrid mono, code 0: all read
    assert sum(1 for f in flags if f) > len(packets) // 2


def test_what_it_does_not_read_is_unknown() -> None:
    assert has_fec(b"") is None
    assert has_fec(b"\x78\x01") is None  # a DTX comfort packet
    assert has_fec(bytes([31 << 3, 0xFF, 0xFF, 0xFF])) is None  # CELT-only
    assert has_fec(bytes([(13 << 3) | 0x04, 0xFF, 0xFF])) is None  # stereo
    assert has_fec(bytes([(13 << 3) | 0x03, 0xFF, 0xFF])) is None  # code 3
