"""Seam: the headset's own audio receive buffer and decoder in aiortc (aiortc 1.16.0 only).

aiortc's receiver puts audio through ``JitterBuffer(capacity=16, prefetch=4)``, which hands a
packet to the decoder only once four later frames have arrived: ~80 ms added to every hop
(docs: FACTS), and its FFmpeg Opus decoder cannot conceal a lost frame. Within
:func:`low_latency_audio` new audio receivers get:

* :class:`ReorderJitterBuffer` instead: the reordering window of :mod:`voice_client.reorder`
  (a packet in order goes to the decoder at once; one behind a hole waits at most
  ``reorder_ms``, default 60; a hole given up is filled; late and duplicate packets are dropped
  and counted). Each call hands aiortc at most one :class:`FrameBatch` (the frames released by
  that packet, in order);
* :class:`ConcealingOpusDecoder` (``aiortc.codecs.OpusDecoder`` replaced) to decode a batch:
  packets with libopus, fills with its packet loss concealment or, for the frame before a
  packet, that packet's in-band FEC (:mod:`voice_client.opusdec`). Frames come out s16 stereo
  at 48 kHz with their RTP time as ``pts``, like aiortc's.

Jitter beyond the window is absorbed by the playout FIFO (:class:`voice_client.devices.Playout`,
``prebuffer_ms``), or frames are placed by RTP time when recording. Every window's counters
add up in the :class:`ReceiveStats` the block yields (``filled`` is what the headset reports as
concealment). Video keeps aiortc's buffer.

``aiortc.rtcrtpreceiver`` looks ``JitterBuffer`` up in its module globals when a receiver is
made, and ``aiortc.codecs.get_decoder`` looks ``OpusDecoder`` up when its decoder thread sees the
first frame, so receivers created inside the ``with`` block use both. Pinned like the other
seams: :func:`check_aiortc` refuses any other aiortc, and ``tests/unit/test_client_jitter.py``
fails loudly if the patched names or the call sites change.
"""

from __future__ import annotations

import fractions
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import aiortc.codecs
import aiortc.rtcrtpreceiver
import av
from aiortc.jitterbuffer import JitterFrame

from voice_client.opus import check_aiortc
from voice_client.opusdec import OpusError, OpusPlc
from voice_client.reorder import DEFAULT_DEPTH_MS, Out, ReorderStats, ReorderWindow

__all__ = [
    "ConcealingOpusDecoder",
    "FrameBatch",
    "ReceiveStats",
    "ReorderJitterBuffer",
    "low_latency_audio",
]

log = logging.getLogger(__name__)

_PATCHED = "JitterBuffer"  # looked up by aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__
_PATCHED_DECODER = "OpusDecoder"  # looked up by aiortc.codecs.get_decoder
_TIME_BASE = fractions.Fraction(1, 48_000)
_TS_MOD = 1 << 32


class FrameBatch(JitterFrame):
    """The frames one packet released, in order. ``timestamp`` (the first's RTP time) is what
    aiortc maps to the stream's time; ``data`` is the first packet's payload (or empty)."""

    def __init__(self, items: list[Out]) -> None:
        first = next((o.payload for o in items if o.payload is not None), b"")
        super().__init__(data=first, timestamp=items[0].timestamp)
        self.items = items
        self.rtp_timestamp = items[0].timestamp


class ReorderJitterBuffer:
    """aiortc's ``JitterBuffer`` interface over a :class:`ReorderWindow` (audio only)."""

    def __init__(
        self,
        window: ReorderWindow,
        capacity: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window
        self._capacity = capacity
        self._clock = clock

    @property
    def capacity(self) -> int:
        return self._capacity

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        items = self.window.push(
            int(packet.sequence_number),
            int(packet.timestamp),
            bytes(packet._data),
            self._clock() * 1000.0,
            ssrc=int(getattr(packet, "ssrc", 0)),
        )
        return False, (FrameBatch(items) if items else None)

    def remove(self, count: int) -> None:
        return None


class ConcealingOpusDecoder:
    """Decodes a :class:`FrameBatch` (or a plain frame): packets, PLC and FEC through libopus."""

    def __init__(self) -> None:
        self._dec = OpusPlc(channels=2)

    def _frame(self, pcm: bytes, pts: int) -> av.AudioFrame:
        frame = av.AudioFrame(format="s16", layout="stereo", samples=len(pcm) // 4)
        frame.planes[0].update(pcm)
        frame.sample_rate = 48_000
        frame.pts = pts
        frame.time_base = _TIME_BASE
        return frame

    def decode(self, encoded_frame: JitterFrame) -> list[av.AudioFrame]:
        if not isinstance(encoded_frame, FrameBatch):
            items = [Out(encoded_frame.timestamp, encoded_frame.data)]
            base, origin = encoded_frame.timestamp, encoded_frame.timestamp
        else:
            items = encoded_frame.items
            base, origin = encoded_frame.timestamp, encoded_frame.rtp_timestamp
        frames = []
        for item in items:
            try:
                if item.payload is not None:
                    pcm = self._dec.decode(item.payload)
                elif item.fec is not None:
                    pcm = self._dec.recover(item.fec, item.samples)
                else:
                    pcm = self._dec.conceal(item.samples)
            except OpusError as exc:
                log.warning("audio frame not decoded: %s", exc)
                continue
            if pcm:
                frames.append(self._frame(pcm, base + (item.timestamp - origin) % _TS_MOD))
        return frames


class ReceiveStats:
    """Every reordering window made in a :func:`low_latency_audio` block, added up."""

    def __init__(self, depth_ms: float) -> None:
        self.depth_ms = depth_ms
        self._windows: list[ReorderWindow] = []
        self._lock = threading.Lock()

    def window(self) -> ReorderWindow:
        w = ReorderWindow(depth_ms=self.depth_ms)
        with self._lock:
            self._windows.append(w)
        return w

    def totals(self) -> dict[str, int]:
        total = ReorderStats().as_dict()
        with self._lock:
            windows = list(self._windows)
        for w in windows:
            for key, value in w.stats.as_dict().items():
                total[key] += value
        return total


@contextmanager
def low_latency_audio(reorder_ms: float = DEFAULT_DEPTH_MS) -> Iterator[ReceiveStats]:
    """Within the block, new aiortc audio receivers use the headset's buffer and decoder."""
    check_aiortc()
    ReorderWindow(depth_ms=reorder_ms)  # ValueError for a depth out of range, before patching
    stats = ReceiveStats(reorder_ms)
    original = getattr(aiortc.rtcrtpreceiver, _PATCHED)
    original_decoder = getattr(aiortc.codecs, _PATCHED_DECODER)

    def factory(capacity: int, prefetch: int = 0, is_video: bool = False) -> Any:
        if is_video:
            return original(capacity=capacity, prefetch=prefetch, is_video=True)
        return ReorderJitterBuffer(stats.window(), capacity)

    setattr(aiortc.rtcrtpreceiver, _PATCHED, factory)
    setattr(aiortc.codecs, _PATCHED_DECODER, ConcealingOpusDecoder)
    try:
        yield stats
    finally:
        setattr(aiortc.rtcrtpreceiver, _PATCHED, original)
        setattr(aiortc.codecs, _PATCHED_DECODER, original_decoder)
