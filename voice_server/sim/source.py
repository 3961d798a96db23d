"""What one simulated microphone sends on each 20 ms frame (pure module: no I/O).

While talking: the next real Opus frame with audio level 20 (the server's talk detector hears
it as speech); while silent, with ``dtx``: a 3-byte DTX frame at level 127 every 400 ms, as a
browser with ``usedtx=1`` does (the offset spreads those frames over the 20 frames); otherwise
nothing. Sequence numbers go up by one per packet, the timestamp follows the frame clock (so a
pause is a timestamp gap), and the marker bit starts each talkspurt.
"""

from __future__ import annotations

import secrets

from voice_server.sim.audio import DTX_PAYLOAD, rtp_packet

__all__ = ["DTX_FRAMES", "FRAME_SAMPLES", "SILENCE_LEVEL", "TALK_LEVEL", "MicSource"]

TALK_LEVEL = 20
SILENCE_LEVEL = 127
DTX_FRAMES = 20  # one DTX frame every 400 ms
FRAME_SAMPLES = 960
PAYLOAD_TYPE = 111  # fixed by the server's offer


class MicSource:
    __slots__ = ("_seq", "_ts_base", "_was_talking", "dtx", "dtx_offset", "frames", "ssrc")

    def __init__(self, frames: tuple[bytes, ...], *, dtx: bool, phase: int = 0) -> None:
        self.frames = frames
        self.dtx = dtx
        self.dtx_offset = phase % DTX_FRAMES
        self.ssrc = secrets.randbits(32) or 1
        self._seq = secrets.randbits(16)
        self._ts_base = secrets.randbits(32)
        self._was_talking = False

    def packet(self, frame: int, now_ns: int, talking: bool) -> bytes | None:
        """The RTP packet for frame number ``frame`` (send stamp ``now_ns``), or None."""
        if talking:
            level = TALK_LEVEL
            payload = self.frames[frame % len(self.frames)]
        elif self.dtx and frame % DTX_FRAMES == self.dtx_offset:
            level = SILENCE_LEVEL
            payload = DTX_PAYLOAD
        else:
            self._was_talking = False
            return None
        marker = talking and not self._was_talking
        self._was_talking = talking
        self._seq = (self._seq + 1) & 0xFFFF
        return rtp_packet(
            payload_type=PAYLOAD_TYPE,
            marker=marker,
            seq=self._seq,
            timestamp=self._ts_base + frame * FRAME_SAMPLES,
            ssrc=self.ssrc,
            level=level,
            stamp_ns=now_ns,
            payload=payload,
        )
