"""Seam: no receive-side jitter buffering in aiortc for audio (aiortc 1.16.0 only).

aiortc's receiver puts audio through ``JitterBuffer(capacity=16, prefetch=4)``, which hands a
packet to the decoder only once four later frames have arrived: ~80 ms added to every hop
(docs: FACTS). The headset client absorbs jitter where it belongs, in its playout FIFO
(:class:`voice_client.devices.Playout`, ``prebuffer_ms``), or places frames by RTP time when
recording, so :func:`low_latency_audio` replaces the audio buffer with
:class:`PassThroughJitterBuffer`: every packet newer than the last one goes to the decoder at
once; duplicates and late (reordered) packets are dropped and counted. Video keeps aiortc's.

``aiortc.rtcrtpreceiver`` looks ``JitterBuffer`` up in its module globals when a receiver is
made, so receivers created inside the ``with`` block use the replacement. Pinned like the other
seams: :func:`check_aiortc` refuses any other aiortc, and ``tests/unit/test_client_jitter.py``
fails loudly if the patched name or the call site changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiortc.rtcrtpreceiver
from aiortc.jitterbuffer import JitterFrame

from voice_client.opus import check_aiortc

__all__ = ["PassThroughJitterBuffer", "low_latency_audio"]

_PATCHED = "JitterBuffer"


class PassThroughJitterBuffer:
    """Audio: one packet is one frame; pass each newer packet through at once."""

    def __init__(self, capacity: int = 16, prefetch: int = 0, is_video: bool = False) -> None:
        self._capacity = capacity
        self._last: int | None = None
        self.late = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = int(packet.sequence_number)
        if self._last is not None:
            delta = (seq - self._last) & 0xFFFF
            if delta == 0 or delta >= 0x8000:  # a duplicate, or older than what was played
                self.late += 1
                return False, None
        self._last = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)

    def remove(self, count: int) -> None:
        return None


@contextmanager
def low_latency_audio() -> Iterator[None]:
    """Within the block, new aiortc audio receivers skip aiortc's jitter buffer."""
    check_aiortc()
    original = getattr(aiortc.rtcrtpreceiver, _PATCHED)

    def factory(capacity: int, prefetch: int = 0, is_video: bool = False) -> Any:
        if is_video:
            return original(capacity=capacity, prefetch=prefetch, is_video=True)
        return PassThroughJitterBuffer(capacity, prefetch)

    setattr(aiortc.rtcrtpreceiver, _PATCHED, factory)
    try:
        yield
    finally:
        setattr(aiortc.rtcrtpreceiver, _PATCHED, original)
