"""Per-stream receive statistics of a simulated listener (RFC 3550 section 6.4.1 and A.1, A.8).

One :class:`StreamStats` per received SSRC (a slot of the server): packets received, extended
highest sequence number (so sequence gaps count as loss across wrap-arounds), duplicates and
reordered packets, and the RFC 3550 interarrival jitter in 48 kHz timestamp units. Arrival times
are integer nanoseconds from a monotonic clock.

Pure module: no I/O. Per packet a few integer operations and one float update.
"""

from __future__ import annotations

__all__ = ["CLOCK_RATE", "StreamStats"]

CLOCK_RATE = 48000
_SEQ_MOD = 1 << 16


class StreamStats:
    """Receive statistics of one SSRC."""

    __slots__ = (
        "_base",
        "_max",
        "_transit",
        "duplicates",
        "first_ns",
        "jitter",
        "last_ns",
        "max_gap_ns",
        "received",
        "reordered",
        "ssrc",
    )

    def __init__(self, ssrc: int) -> None:
        self.ssrc = ssrc
        self.received = 0
        self.duplicates = 0
        self.reordered = 0
        #: RFC 3550 interarrival jitter, in timestamp units (48 kHz)
        self.jitter = 0.0
        self.first_ns = -1
        self.last_ns = -1
        #: the longest time between two arrivals (set it to 0 to start a new window)
        self.max_gap_ns = 0
        self._base = 0  # extended sequence number of the first packet
        self._max = -1  # extended highest sequence number, -1 before any packet
        self._transit = 0

    def on_packet(self, seq: int, timestamp: int, arrival_ns: int) -> None:
        """Account for one packet with RTP ``seq``/``timestamp`` arriving at ``arrival_ns``."""
        arrival = arrival_ns * CLOCK_RATE // 1_000_000_000
        transit = (arrival - timestamp) & 0xFFFFFFFF
        if self.last_ns >= 0 and arrival_ns - self.last_ns > self.max_gap_ns:
            self.max_gap_ns = arrival_ns - self.last_ns
        self.last_ns = arrival_ns
        if self._max < 0:
            self._base = self._max = seq
            self.first_ns = arrival_ns
            self._transit = transit
            self.received = 1
            return
        self.received += 1
        delta = (seq - self._max) % _SEQ_MOD
        if delta == 0:
            self.duplicates += 1
            return
        if delta < 0x8000:
            self._max += delta
        else:
            self.reordered += 1  # older than the highest: late, not lost
        d = (transit - self._transit) & 0xFFFFFFFF
        if d >= 0x80000000:
            d = 0x100000000 - d
        self._transit = transit
        self.jitter += (d - self.jitter) / 16.0

    @property
    def expected(self) -> int:
        """Packets the sequence numbers say were sent from the first to the highest received."""
        return 0 if self._max < 0 else self._max - self._base + 1

    @property
    def lost(self) -> int:
        """``expected - received`` (duplicates not counted), floored at 0."""
        return max(0, self.expected - (self.received - self.duplicates))

    @property
    def jitter_ms(self) -> float:
        return self.jitter * 1000.0 / CLOCK_RATE
