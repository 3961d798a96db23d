"""From received RTP packets to the Opus packet sequence of a burst (pure).

The server writes, and the sidecar decodes, exactly the sequence :class:`Sequencer` produces:
packets in sequence order, late and duplicate ones dropped, and each hole in RTP time (loss, or
a DTX pause inside a burst) filled with 20 ms zero-length Opus frames (RFC 6716 section 3.2.1:
a frame of length 0 means "lost": the decoder conceals it). The clip then keeps real time, and
live decoding and decoding from the spool see the same packets.
"""

from __future__ import annotations

__all__ = ["FILLER", "FRAME_SAMPLES", "MAX_FILL_SAMPLES", "Sequencer", "opus_samples"]

FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FILLER = b"\xf8"  # TOC: CELT-only fullband 20 ms, mono, one frame; no frame data
MAX_FILL_SAMPLES = 48000 * 5  # never fill more than 5 s at once
_SILK = (480, 960, 1920, 2880)
_CELT = (120, 240, 480, 960)


def opus_samples(packet: bytes) -> int:
    """48 kHz samples in an Opus packet, from its TOC byte (RFC 6716 section 3.1); 0 if empty."""
    if not packet:
        return 0
    toc = packet[0]
    config = toc >> 3
    if config < 12:
        per_frame = _SILK[config & 3]
    elif config < 16:
        per_frame = 480 if config & 1 == 0 else 960
    else:
        per_frame = _CELT[config & 3]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        frames = packet[1] & 0x3F if len(packet) > 1 else 0
    return per_frame * frames


class Sequencer:
    """Orders one talker's packets for a burst; :meth:`push` returns (packet, samples) pairs."""

    __slots__ = ("_last_seq", "_next_ts", "dropped", "filled")

    def __init__(self) -> None:
        self._last_seq: int | None = None
        self._next_ts: int | None = None
        self.dropped = 0  # late or duplicate
        self.filled = 0  # filler frames inserted

    def push(self, seq: int, ts: int, payload: bytes) -> list[tuple[bytes, int]]:
        if not payload:
            return []
        samples = opus_samples(payload)
        if samples <= 0:
            return []
        out: list[tuple[bytes, int]] = []
        if self._last_seq is not None and self._next_ts is not None:
            ahead = (seq - self._last_seq) & 0xFFFF
            if ahead == 0 or ahead >= 0x8000:
                self.dropped += 1
                return out
            gap = (ts - self._next_ts) & 0xFFFFFFFF
            if gap < 0x80000000 and gap >= FRAME_SAMPLES:
                n = min(gap, MAX_FILL_SAMPLES) // FRAME_SAMPLES
                out.extend((FILLER, FRAME_SAMPLES) for _ in range(n))
                self.filled += n
        self._last_seq = seq
        self._next_ts = (ts + samples) & 0xFFFFFFFF
        out.append((payload, samples))
        return out
