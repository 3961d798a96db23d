"""Does an Opus packet carry in-band FEC? Read its SILK header's LBRR flag (RFC 6716).

Opus's in-band FEC is SILK's "low bit-rate redundancy" (LBRR): a coarser copy of the previous
frame inside the current packet. Whether the encoder put one in is the LBRR flag, the second
range-coded bit of a mono SILK frame (after its VAD flag), both coded with probability ½
(RFC 6716 section 4.2.3). Reading it takes the first few bytes of the range decoder (section
4.1), no decoding of audio: the server counts talkers' packets with FEC (a metric, and the proof
that receiver reports turned the encoder's FEC on) without an Opus decoder.

Only what Chromium and the headset client send is read: mono SILK-only or hybrid packets with
one frame (code 0) or two equal frames (code 1); for anything else (CELT-only, stereo,
codes 2 and 3, DTX comfort packets of one or two bytes) the answer is None: not known.
"""

from __future__ import annotations

__all__ = ["has_fec"]


def _first_frame(packet: bytes | memoryview) -> int | None:
    """Offset of the first frame's data, or None when it is not read (see module doc)."""
    if len(packet) < 3:
        return None
    toc = packet[0]
    config = toc >> 3
    if config >= 16 or toc & 0x04:  # CELT-only, or stereo
        return None
    if toc & 0x03 > 1:  # codes 2 and 3
        return None
    return 1


def has_fec(packet: bytes | memoryview) -> bool | None:
    """True when the (first) SILK frame of this Opus packet carries LBRR data."""
    start = _first_frame(packet)
    if start is None:
        return None
    config = packet[0] >> 3
    # SILK frames in this Opus frame: 10 and 20 ms → 1, 40 ms → 2, 60 ms → 3 (hybrid: 1)
    frames = 1 if config >= 12 else max(1, (10, 20, 40, 60)[config & 3] // 20)
    dec = _RangeDecoder(packet, start)
    for _ in range(frames):  # one VAD flag per SILK frame
        dec.bit_half()
    return dec.bit_half()


class _RangeDecoder:
    """The start of RFC 6716's range decoder (section 4.1): enough for flags coded with
    probability ½ (``ec_dec_bit_logp(1)``)."""

    __slots__ = ("buf", "pos", "rem", "rng", "val")

    def __init__(self, buf: bytes | memoryview, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        b0 = self._byte()
        self.rng = 128
        self.val = 127 - (b0 >> 1)
        self.rem = b0 & 1
        self._normalize()

    def _byte(self) -> int:
        if self.pos < len(self.buf):
            b = self.buf[self.pos]
            self.pos += 1
            return int(b)
        return 0  # past the end: zeros, as the reference decoder reads

    def _normalize(self) -> None:
        while self.rng <= 1 << 23:
            self.rng <<= 8
            b = self._byte()
            sym = ((self.rem << 7) | (b >> 1)) & 0xFF
            self.rem = b & 1
            self.val = ((self.val << 8) + (255 - sym)) & 0x7FFFFFFF

    def bit_half(self) -> bool:
        s = self.rng >> 1
        one = self.val < s
        if one:
            self.rng = s
        else:
            self.val -= s
            self.rng -= s
        self._normalize()
        return one
