"""The microphone path of the headset client: the VAD gate applied to 20 ms PCM48 frames, and
tone-onset detection for the latency benchmark.

:class:`Gate` splits each 20 ms frame into two 10 ms blocks, feeds their levels to a
:class:`~voice_client.vad.VadGate` and outputs the audio one block late (so the block that
opened the gate is sent whole), multiplied by a gain ramped over 5 ms. When the gate has been
closed for a few frames, :meth:`Gate.process` returns None: nothing is sent at all while nobody
speaks (the server's talk detector ends the burst when packets stop, like Opus DTX).

:class:`OnsetDetector` is the same rule as the browser's (``gate-worklet.js``): an onset is the
first sample louder than -26 dBFS after 300 ms without one.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from voice_client.vad import VadGate, rms_db

__all__ = ["BLOCK_SAMPLES", "Gate", "OnsetDetector"]

RATE = 48000
BLOCK_SAMPLES = RATE // 100  # 10 ms
_RAMP = RATE // 200  # 5 ms
_QUIET_FRAMES_BEFORE_PAUSE = 3  # 60 ms of digital silence, then stop sending


class OnsetDetector:
    """First sample above ``loud`` (of full scale) after ``quiet_ms`` without one."""

    __slots__ = ("_limit", "_needed", "_since")

    def __init__(self, *, loud: float = 0.05, quiet_ms: int = 300, rate: int = RATE) -> None:
        self._limit = int(loud * 32768)
        self._needed = rate * quiet_ms // 1000
        self._since = self._needed

    def scan(self, samples: array[int]) -> int:
        """Index of the first onset in ``samples``, or -1."""
        found = -1
        limit = self._limit
        since = self._since
        for i, x in enumerate(samples):
            if x > limit or x < -limit:
                if since >= self._needed and found < 0:
                    found = i
                since = 0
            else:
                since += 1
        self._since = since
        return found


class Gate:
    """VAD gate over 20 ms frames, one 10 ms block of delay, 5 ms gain ramps."""

    def __init__(self, vad: VadGate, on_change: Callable[[bool], None] | None = None) -> None:
        self.vad = vad
        self._on_change = on_change
        self._delayed = array("h", bytes(2 * BLOCK_SAMPLES))
        self._gain = 0.0
        self._quiet_frames = _QUIET_FRAMES_BEFORE_PAUSE
        #: 10 ms blocks in which the gate was open (sent), for tests and logs
        self.blocks_open = 0

    @property
    def open(self) -> bool:
        return self.vad.open

    def process(self, frame: bytes) -> bytes | None:
        """One 20 ms frame in; the gated frame out, or None when nothing should be sent."""
        samples = array("h", frame)
        out = array("h")
        for start in range(0, len(samples), BLOCK_SAMPLES):
            block = samples[start : start + BLOCK_SAMPLES]
            if self.vad.feed(rms_db(block)) and self._on_change is not None:
                self._on_change(self.vad.open)
            out.extend(self._apply(self._delayed))
            self._delayed = block
        if any(out) or self.vad.forced:  # an open emergency sends even digital silence
            self._quiet_frames = 0
        else:
            self._quiet_frames += 1
            if self._quiet_frames > _QUIET_FRAMES_BEFORE_PAUSE:
                return None
        return out.tobytes()

    def _apply(self, block: array[int]) -> array[int]:
        target = 1.0 if self.vad.open else 0.0
        if target:
            self.blocks_open += 1
        if self._gain == target:
            return block if target else array("h", bytes(2 * len(block)))
        step = 1.0 / _RAMP
        out = array("h", bytes(2 * len(block)))
        gain = self._gain
        for i, x in enumerate(block):
            if gain < target:
                gain = min(target, gain + step)
            elif gain > target:
                gain = max(target, gain - step)
            out[i] = int(x * gain)
        self._gain = gain
        return out
