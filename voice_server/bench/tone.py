"""A generated audio source for benchmark clients: a sine in 20 ms, 48 kHz mono frames."""

from __future__ import annotations

import asyncio
import math
import time
from array import array
from fractions import Fraction

from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import AudioFrame

__all__ = ["PACKETS_PER_SECOND", "SAMPLES_PER_FRAME", "SAMPLE_RATE", "TONE_HZ", "ToneTrack"]

SAMPLE_RATE = 48_000
SAMPLES_PER_FRAME = 960  # 20 ms
PACKETS_PER_SECOND = 50  # one RTP packet per 20 ms frame
TONE_HZ = 400  # 8 whole periods per 20 ms frame: one precomputed frame loops seamlessly


class ToneTrack(AudioStreamTrack):
    """20 ms frames of a 48 kHz mono s16 sine, paced in real time from the first frame.

    With a ``gate``, the first ``recv()`` waits until the event is set, so a peer can connect
    before it starts sending (no backlog builds up while other peers connect).
    """

    def __init__(
        self, gate: asyncio.Event | None = None, hz: int = TONE_HZ, amplitude: float = 0.3
    ) -> None:
        super().__init__()
        self._gate = gate
        peak = amplitude * 32767
        self._pcm = array(
            "h",
            (
                int(peak * math.sin(2 * math.pi * hz * n / SAMPLE_RATE))
                for n in range(SAMPLES_PER_FRAME)
            ),
        ).tobytes()
        self._t0: float | None = None
        self._pts = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            if self._gate is not None:
                await self._gate.wait()
            self._t0 = time.monotonic()
        else:
            self._pts += SAMPLES_PER_FRAME
            delay = self._t0 + self._pts / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
        frame.planes[0].update(self._pcm)
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = Fraction(1, SAMPLE_RATE)
        return frame
