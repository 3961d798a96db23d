"""The router's tap: each talk burst's packets handed off, never waited on (event loop side).

The router calls :meth:`BurstTap.open` when the talk detector starts a burst (with the pre-roll
packets, whether or not the talker got a slot), :meth:`BurstTap.packet` for each packet of the
burst (one bounded ``deque.append``: the packet bytes the router already has, decrypted, not
decoded), and :meth:`BurstTap.close` when the burst ends. Two consumers:

- the spool writer thread (:mod:`voice_server.transcribe.spool`) writes every burst to disk;
- the live link (:class:`LiveSink`, the sidecar's WebSocket) gets the same packets when a
  sidecar is connected.

Bounds: the spool queue holds at most ``queue_limit`` packets; beyond it packets are dropped and
counted, and the burst gets a ``spool_backlog`` gap record. Open and close items always go in
(one each per burst). Each opened burst is also put on :attr:`BurstTap.opening` (at most
:data:`OPENING_LIMIT`, never blocking; when full the writer creates the file at the OPEN item as
before, counted in ``opening_drops``) for the spool writer's opener thread, which creates the
burst's file with its metadata at once, ahead of whatever the writer thread is still busy with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import Full, Queue
from typing import Protocol

from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import new_burst_id

__all__ = ["BurstHandle", "BurstTap", "LiveSink", "SpeakerOf", "TapCounters"]

log = logging.getLogger(__name__)

OPEN, PACKET, CLOSE = 0, 1, 2
SpeakerOf = Callable[[str], tuple[str, str] | None]  # session id -> (sub, display name)
#: (session id, channel tapped) -> the burst's kind, the other channels it reaches, and a direct
#: talk's target
BurstRouteOf = Callable[[str, str], tuple[str, tuple[str, ...], str | None]]


class BurstHandle:
    """One burst in flight. Mutated by the event loop (counters, live) and read by the writer."""

    __slots__ = ("ended_ms", "live", "meta", "no", "overflow", "packets", "spooled")

    def __init__(self, meta: BurstMeta, no: int) -> None:
        self.meta = meta
        self.no = no
        self.live = False  # streamed to a connected sidecar
        self.overflow = 0  # packets dropped because the spool queue was full
        self.packets = 0
        self.ended_ms = 0
        self.spooled = False  # the spool writer has begun its file (set by the writer's side)


class LiveSink(Protocol):
    """The live link to the sidecar (implemented by the link hub)."""

    @property
    def connected(self) -> bool: ...

    def start(self, handle: BurstHandle, packets: list[bytes]) -> bool: ...

    def packet(self, handle: BurstHandle, plain: bytes) -> None: ...

    def end(self, handle: BurstHandle) -> None: ...


#: bursts waiting for the opener thread (a thousand talkers starting at once stay far below)
OPENING_LIMIT = 1024


@dataclass(slots=True)
class TapCounters:
    bursts: int = 0
    packets: int = 0
    queue_drops: int = 0
    opening_drops: int = 0  # bursts the opener thread did not get (its queue was full)
    unknown_speaker: int = 0


Item = tuple[int, BurstHandle, object]


class BurstTap:
    def __init__(
        self,
        speaker_of: SpeakerOf,
        *,
        queue_limit: int = 50_000,
        live: LiveSink | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        route_of: BurstRouteOf | None = None,
    ) -> None:
        self._speaker_of = speaker_of
        self._route_of = route_of
        #: the call-log kind of a session's burst now (the app: ``emergency`` while its
        #: emergency window holds a slot); None: every burst is speech
        self.kind_of: Callable[[str], str] | None = None
        self.queue: deque[Item] = deque()
        self.queue_limit = queue_limit
        #: bursts just opened, for the spool writer's opener thread (bounded; None stops it)
        self.opening: Queue[BurstHandle | None] = Queue(maxsize=OPENING_LIMIT)
        self.wake = threading.Event()
        self.live = live
        self.counters = TapCounters()
        self._clock_ms = clock_ms
        self._next_no = 0

    def open(
        self, session_id: str, channel: str, preroll: list[tuple[bytes, int]], now_ms: int
    ) -> BurstHandle:
        """A burst starts; ``preroll`` is (packet, arrival ms) oldest first, ``now_ms`` on the
        same monotonic clock as the arrivals."""
        speaker = self._speaker_of(session_id)
        if speaker is None:
            self.counters.unknown_speaker += 1
            speaker = (f"session:{session_id}", "?")
        first = preroll[0][1] if preroll else now_ms
        start_ms = self._clock_ms() - max(0, now_ms - first)
        self._next_no = (self._next_no + 1) & 0xFFFFFFFF
        kind, also, target = (
            self._route_of(session_id, channel) if self._route_of else ("speech", (), None)
        )
        if kind == "speech" and self.kind_of is not None:
            kind = self.kind_of(session_id)  # an emergency's window
        meta = BurstMeta(
            new_burst_id(start_ms),
            channel,
            speaker[0],
            speaker[1],
            session_id,
            start_ms,
            kind,
            also,
            target,
        )
        handle = BurstHandle(meta, self._next_no)
        packets = [p for p, _ in preroll]
        handle.packets = len(packets)
        self.counters.bursts += 1
        self.counters.packets += len(packets)
        self.queue.append((OPEN, handle, packets))
        try:
            self.opening.put_nowait(handle)
        except Full:  # the writer creates it when it reaches the OPEN item
            self.counters.opening_drops += 1
        live = self.live
        if live is not None and live.connected:
            handle.live = live.start(handle, packets)
        return handle

    def packet(self, handle: BurstHandle, plain: bytes) -> None:
        if len(self.queue) >= self.queue_limit:
            handle.overflow += 1
            self.counters.queue_drops += 1
        else:
            self.queue.append((PACKET, handle, plain))
            handle.packets += 1
            self.counters.packets += 1
        if handle.live:
            self.live.packet(handle, plain)  # type: ignore[union-attr]

    def close(self, handle: BurstHandle) -> None:
        handle.ended_ms = self._clock_ms()
        self.queue.append((CLOSE, handle, None))
        self.wake.set()
        if handle.live:
            self.live.end(handle)  # type: ignore[union-attr]
