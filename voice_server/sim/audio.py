"""What simulated talkers send: real Opus frames and the RTP packets that carry them.

:func:`opus_frames` encodes a one-second 440 Hz tone once with PyAV's libopus encoder (48 kHz
mono, 24 kbps by default: speech-sized packets of about 60 bytes) and talkers cycle through the
frames. :func:`rtp_packet` builds a packet with one struct call: the RFC 6464 audio level
(extension id 1, as the server's offer fixes it) and, for latency measurement, the sender's
monotonic clock in nanoseconds as a second one-byte header extension element (id
:data:`STAMP_EXT_ID`, 8 bytes; header extensions are not encrypted and the server forwards them
unchanged, and receivers ignore ids they did not negotiate).
"""

from __future__ import annotations

import array
import fractions
import functools
import math
import struct

__all__ = [
    "DTX_PAYLOAD",
    "HEADER_LENGTH",
    "STAMP_EXT_ID",
    "opus_frames",
    "read_stamp",
    "rtp_packet",
]

STAMP_EXT_ID = 2
DTX_PAYLOAD = b"\xf8\xff\xfe"  # a 3-byte Opus DTX/comfort frame
SAMPLE_RATE = 48000
FRAME_SAMPLES = 960
# V=2 X=1 | M PT | seq | ts | ssrc | 0xBEDE | 3 words | level elem | stamp elem (id 2, len 8) | pad
_PACKET = struct.Struct("!BBHIIHHBBBQB")
HEADER_LENGTH = _PACKET.size  # 28
_STAMP = struct.Struct("!Q")
_STAMP_HEAD = (STAMP_EXT_ID << 4) | 7
_LEVEL_HEAD = (1 << 4) | 0


def rtp_packet(
    *,
    payload_type: int,
    marker: bool,
    seq: int,
    timestamp: int,
    ssrc: int,
    level: int,
    stamp_ns: int,
    payload: bytes,
) -> bytes:
    """One RTP packet with audio level ``level`` (V flag set when < 127) and a send stamp."""
    head = _PACKET.pack(
        0x90,
        (0x80 if marker else 0) | payload_type,
        seq & 0xFFFF,
        timestamp & 0xFFFFFFFF,
        ssrc,
        0xBEDE,
        3,
        _LEVEL_HEAD,
        (0x80 if level < 127 else 0) | level,
        _STAMP_HEAD,
        stamp_ns,
        0,
    )
    return head + payload


def read_stamp(plain: bytes) -> int | None:
    """The send stamp of a packet built by :func:`rtp_packet` (after the server rewrote its
    fixed header), None for any other packet."""
    if len(plain) >= HEADER_LENGTH and plain[0] == 0x90 and plain[18] == _STAMP_HEAD:
        value: int = _STAMP.unpack_from(plain, 19)[0]
        return value
    return None


@functools.cache
def opus_frames(bitrate: int = 24_000, seconds: float = 1.0) -> tuple[bytes, ...]:
    """Opus packets (20 ms each) of a 440 Hz tone at ``bitrate``, encoded once per process."""
    import av  # only when talkers need audio: PyAV loads FFmpeg

    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, SAMPLE_RATE)
    count = max(1, round(seconds * SAMPLE_RATE / FRAME_SAMPLES))
    frames: list[bytes] = []
    for i in range(count):
        tone = array.array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * 440 * (i * FRAME_SAMPLES + n) / SAMPLE_RATE))
                for n in range(FRAME_SAMPLES)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = i * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        frame.planes[0].update(tone.tobytes())
        frames.extend(bytes(packet) for packet in codec.encode(frame))
    frames.extend(bytes(packet) for packet in codec.encode(None))
    return tuple(frames[:count])
