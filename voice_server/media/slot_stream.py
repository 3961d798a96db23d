"""RTP header continuity for one outgoing slot stream, and a per-talker pre-roll buffer.

A listener's slot stream (one SDP m-line, mids "1".."N") is announced with ONE fixed SSRC
(``a=ssrc``) for the whole session; different talkers take turns on it. Browsers treat an
unannounced SSRC as a second, unplayed stream, so the server never changes the SSRC: it rewrites
each forwarded packet's sequence number and timestamp instead (RFC 3550 section 5.1):

* sequence numbers go up by 1 at a talker switch and, within one talker, by the talker's own
  step, modulo 2**16: a packet lost on the talker's uplink stays a gap the listeners see
  (NetEq then knows a packet is missing and repairs it from the next packet's Opus FEC or RED
  redundancy, and the listener's receiver reports count it); a jump of more than
  :data:`MAX_SEQ_GAP` (a restarted sender) goes up by 1. A **late** packet of the current talker
  (older than its newest, reordered by jitter on the talker's uplink) is forwarded into the hole
  its absence left: the same offset gives it the number the listeners are missing, so their
  jitter buffer puts it back in place instead of concealing it (the head's numbers and
  timestamp stay the newest packet's). It must be at most :data:`LATE_WINDOW` packets behind
  the newest and after the talker's last renumbering (a switch or a jump); a duplicate (of the
  newest or of one already forwarded in the window) or an older packet is dropped;
* within one talker the original timestamp differences are kept (DTX gaps stay gaps);
* at a switch (a different talker, or the first packet after :meth:`SlotStream.release`) the
  timestamp advances by the wall-clock time since the previous packet on the slot, in 48 kHz
  units and at least one 20 ms frame (960), and the marker bit is set (start of a talkspurt,
  RFC 3551 section 4.1).

:class:`PreRoll` keeps each talker's most recent packets (after SRTP unprotect) so that when the
talk detector opens a slot, the speech that triggered it (the attack) is sent first instead of
being lost.

Pure module: no I/O, no asyncio. Per packet: integer arithmetic and one ``struct.pack_into``.
"""

from __future__ import annotations

import struct
from collections.abc import Hashable

__all__ = ["CLOCK_RATE", "FRAME_SAMPLES", "LATE_WINDOW", "MAX_SEQ_GAP", "PreRoll", "SlotStream"]

CLOCK_RATE = 48000
FRAME_SAMPLES = 960  # one 20 ms Opus frame at 48 kHz
_SAMPLES_PER_MS = CLOCK_RATE // 1000
_SEQ_MASK = 0xFFFF
#: the largest uplink gap (in packets: ~1 s of 20 ms frames) kept as a gap in the slot's numbers
MAX_SEQ_GAP = 50
#: how far behind the newest packet a late one may still be forwarded (packets: ~1.3 s of 20 ms
#: frames, far beyond any listener's jitter buffer; one bit each in a 64-bit window)
LATE_WINDOW = 64
_WINDOW_MASK = (1 << LATE_WINDOW) - 1
_TS_MASK = 0xFFFFFFFF
_MIN_RTP_HEADER = 12

# byte 1 (marker | payload type), sequence number, timestamp, SSRC
_HEADER = struct.Struct("!BHII")


class SlotStream:
    """Sequence/timestamp rewriting for one slot's outgoing stream (one fixed SSRC).

    Use :meth:`rewrite` on a packet buffer, or :meth:`advance` with the parsed fields and read
    :attr:`seq`, :attr:`timestamp` and :attr:`marker` afterwards (no tuple per packet).
    """

    __slots__ = (
        "_last_arrival_ms",
        "_last_in_seq",
        "_seen",
        "_since_renumber",
        "_talker",
        "_ts_offset",
        "forwarded",
        "late",
        "late_forwarded",
        "late_seq",
        "late_timestamp",
        "marker",
        "payload_type",
        "seq",
        "ssrc",
        "stale_dropped",
        "switches",
        "timestamp",
    )

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        *,
        first_seq: int = 0,
        first_timestamp: int = 0,
    ) -> None:
        if not 0 <= ssrc <= _TS_MASK:
            raise ValueError("ssrc must be a 32-bit unsigned integer")
        if not 0 <= payload_type <= 127:
            raise ValueError("payload_type must be within 0..127")
        self.ssrc = ssrc
        self.payload_type = payload_type
        #: Outgoing values of the last packet accepted by :meth:`advance`.
        self.seq = (first_seq - 1) & _SEQ_MASK
        self.timestamp = (first_timestamp - FRAME_SAMPLES) & _TS_MASK
        self.marker = False
        self._talker: Hashable | None = None
        self._ts_offset = 0
        self._last_in_seq = 0
        self._last_arrival_ms: int | None = None
        #: bit i: the talker's packet ``_last_in_seq - i`` was forwarded (i < LATE_WINDOW)
        self._seen = 0
        #: packets (in the talker's numbers) since its last renumbering: no late one before it
        self._since_renumber = 0
        #: True when the last packet accepted was a late one: its outgoing values are
        #: :attr:`late_seq` and :attr:`late_timestamp` (no marker), the head's are unchanged
        self.late = False
        self.late_seq = 0
        self.late_timestamp = 0
        self.forwarded = 0
        self.late_forwarded = 0
        self.switches = 0
        self.stale_dropped = 0

    @property
    def talker(self) -> Hashable | None:
        """The talker whose packets are currently continued, None after :meth:`release`."""
        return self._talker

    def release(self) -> None:
        """The current talker's burst ended: its next packet counts as a switch too."""
        self._talker = None

    def advance(self, talker: Hashable, seq: int, timestamp: int, arrival_ms: int) -> bool:
        """Account for one packet; False means drop it (a duplicate, or too late).

        On True, :attr:`seq`, :attr:`timestamp` and :attr:`marker` hold the outgoing values,
        or, when :attr:`late` is True, :attr:`late_seq` and :attr:`late_timestamp` do.
        """
        self.late = False
        if talker is not None and talker == self._talker:
            delta = (seq - self._last_in_seq) & _SEQ_MASK
            if delta == 0 or delta >= 0x8000:
                return self._late(seq, timestamp)
            self._last_in_seq = seq
            self.timestamp = (timestamp + self._ts_offset) & _TS_MASK
            self.marker = False
            if delta <= MAX_SEQ_GAP:
                step = delta
                self._seen = ((self._seen << delta) | 1) & _WINDOW_MASK
                self._since_renumber += delta
            else:  # a restarted sender: renumbered, nothing before it is late any more
                step = 1
                self._seen = 1
                self._since_renumber = 0
        else:
            last = self._last_arrival_ms
            if last is None:
                gap = FRAME_SAMPLES
            else:
                gap = (arrival_ms - last) * _SAMPLES_PER_MS
                if gap < FRAME_SAMPLES:
                    gap = FRAME_SAMPLES
            out_ts = (self.timestamp + gap) & _TS_MASK
            self._ts_offset = (out_ts - timestamp) & _TS_MASK
            self._talker = talker
            self._last_in_seq = seq
            self._seen = 1
            self._since_renumber = 0
            self.timestamp = out_ts
            self.marker = True
            self.switches += 1
            step = 1
        self.seq = (self.seq + step) & _SEQ_MASK
        if self._last_arrival_ms is None or arrival_ms > self._last_arrival_ms:
            self._last_arrival_ms = arrival_ms
        self.forwarded += 1
        return True

    def _late(self, seq: int, timestamp: int) -> bool:
        """A packet of the current talker not newer than its newest: forwarded into its hole
        when it is within the window, after the last renumbering and not yet forwarded."""
        back = (self._last_in_seq - seq) & _SEQ_MASK
        if back == 0 or back >= LATE_WINDOW or back > self._since_renumber:
            self.stale_dropped += 1
            return False
        bit = 1 << back
        if self._seen & bit:
            self.stale_dropped += 1
            return False
        self._seen |= bit
        self.late = True
        self.late_seq = (self.seq - back) & _SEQ_MASK
        self.late_timestamp = (timestamp + self._ts_offset) & _TS_MASK
        self.late_forwarded += 1
        return True

    def rewrite(self, packet: bytearray, talker: Hashable, arrival_ms: int) -> bool:
        """Rewrite an unprotected RTP packet in place for this slot; False means drop it.

        Sets the payload type, marker (the talker's own marker is kept within a burst), sequence
        number, timestamp and SSRC. CSRCs, header extensions and payload are left as they are.
        """
        if len(packet) < _MIN_RTP_HEADER:
            raise ValueError("not an RTP packet: shorter than 12 bytes")
        in_seq = (packet[2] << 8) | packet[3]
        in_ts = (packet[4] << 24) | (packet[5] << 16) | (packet[6] << 8) | packet[7]
        own_marker = packet[1] & 0x80
        if not self.advance(talker, in_seq, in_ts, arrival_ms):
            return False
        if self.late:
            _HEADER.pack_into(
                packet, 1, self.payload_type, self.late_seq, self.late_timestamp, self.ssrc
            )
            return True
        byte1 = self.payload_type | (0x80 if self.marker or own_marker else 0)
        _HEADER.pack_into(packet, 1, byte1, self.seq, self.timestamp, self.ssrc)
        return True


class PreRoll:
    """The most recent ``capacity`` packets of one talker (a ring; the oldest is overwritten).

    Entries are (packet bytes, arrival ms). :attr:`overwritten` counts packets pushed out before
    being drained: the bounded buffer's drop counter.
    """

    __slots__ = ("_arrivals", "_count", "_head", "_packets", "overwritten")

    def __init__(self, capacity: int = 5) -> None:
        if capacity < 1:
            raise ValueError("a pre-roll needs room for at least one packet")
        self._packets: list[bytes | None] = [None] * capacity
        self._arrivals: list[int] = [0] * capacity
        self._head = 0  # index of the oldest entry
        self._count = 0
        self.overwritten = 0

    @property
    def capacity(self) -> int:
        return len(self._packets)

    def __len__(self) -> int:
        return self._count

    def push(self, packet: bytes, arrival_ms: int) -> None:
        """Keep ``packet`` (not copied); pushes out the oldest one when full."""
        cap = len(self._packets)
        if self._count == cap:
            i = self._head
            self._head = (i + 1) % cap
            self.overwritten += 1
        else:
            i = (self._head + self._count) % cap
            self._count += 1
        self._packets[i] = packet
        self._arrivals[i] = arrival_ms

    def drain(self) -> list[tuple[bytes, int]]:
        """Remove and return every kept packet, oldest first, as (packet, arrival_ms)."""
        cap = len(self._packets)
        out: list[tuple[bytes, int]] = []
        for k in range(self._count):
            i = (self._head + k) % cap
            packet = self._packets[i]
            assert packet is not None
            out.append((packet, self._arrivals[i]))
            self._packets[i] = None
        self._head = 0
        self._count = 0
        return out

    def peek(self) -> list[tuple[bytes, int]]:
        """Every kept packet, oldest first, as (packet, arrival_ms), leaving them kept."""
        cap = len(self._packets)
        out: list[tuple[bytes, int]] = []
        for k in range(self._count):
            i = (self._head + k) % cap
            packet = self._packets[i]
            assert packet is not None
            out.append((packet, self._arrivals[i]))
        return out

    def clear(self) -> None:
        """Drop every kept packet without counting them as overwritten."""
        for i in range(len(self._packets)):
            self._packets[i] = None
        self._head = 0
        self._count = 0
