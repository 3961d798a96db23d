"""The headset client's receive reordering window (pure: no I/O, no clock of its own).

A slot's packets may arrive out of order on a jittery link (Wi-Fi, LTE). :class:`ReorderWindow`
releases them in sequence order and never holds one longer than ``depth_ms`` (default
:data:`DEFAULT_DEPTH_MS`): a packet that arrives in order goes out at once; one that arrives
after a hole waits for the hole to fill, at most ``depth_ms`` after the earliest packet waiting
arrived, and then the hole is given up: each missing frame is filled (the decoder conceals it
with Opus PLC, or from the next packet's in-band FEC for the frame just before it) and counted
in :attr:`ReorderStats.filled`. A packet whose place was already played is late (dropped,
counted), one seen before a duplicate.

What is never filled, so that it adds no delay and no made-up audio:

* a hole longer than :data:`MAX_FILL_FRAMES` frames, or across a timestamp jump (the missing
  frames would not be 2.5-120 ms Opus frames each): a gap, counted in ``skipped``. That is the
  pause between two bursts: the server's slot stream numbers a talker's bursts on and advances
  the timestamp by the pause (``media/slot_stream.py``), so a hole before a burst's first
  packets waits like any other (they may be the late ones: the server sends a burst's pre-roll
  back to back) but is never filled with the pause's worth of concealment. (The RTP marker bit
  cannot tell a burst's start: aiortc senders set it on every audio packet, and the server
  keeps a talker's own marker within a burst);
* packets still waiting :data:`STALE_MS` past the depth when the next packet comes (the
  talkspurt ended while they waited for a hole, and nothing arrives to give it up): dropped,
  counted in ``dropped``, rather than played in front of the next burst.

A new SSRC, or a sequence number more than :data:`MAX_DROPOUT` ahead or :data:`MAX_MISORDER`
behind (a restarted sender), resets the window (``resets``): what waits goes out in order, the
new packet starts afresh. Sequence numbers wrap at 2**16, timestamps at 2**32. At most
:data:`MAX_HELD` packets wait at once: beyond, the first hole is given up early.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field

__all__ = [
    "DEFAULT_DEPTH_MS",
    "MAX_DEPTH_MS",
    "MAX_FILL_FRAMES",
    "MAX_HELD",
    "Out",
    "ReorderStats",
    "ReorderWindow",
]

DEFAULT_DEPTH_MS = 60  # covers ±30 ms of jitter on 20 ms packets; uniform 0-80 ms reorders ≤ 60
MAX_DEPTH_MS = 200
MAX_HELD = 16  # packets waiting at once (320 ms of 20 ms frames)
MAX_FILL_FRAMES = 5  # a longer hole (> 100 ms of 20 ms frames) is a gap, not concealed
MAX_MISORDER = 100  # further behind: a restarted sender, not a late packet
MAX_DROPOUT = 3000  # further ahead: a restarted sender (RFC 3550 A.1)
STALE_MS = 200  # waited this long past the depth: the talkspurt ended meanwhile
FRAME_SAMPLES = 960  # 20 ms at 48 kHz: a fresh stream's first packet is taken to follow one
_MIN_FRAME, _MAX_FRAME = 120, 5760  # Opus: 2.5 ms .. 120 ms at 48 kHz
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_RECENT = 64  # released sequence numbers remembered to tell a duplicate from a late packet


@dataclass(frozen=True, slots=True)
class Out:
    """One frame for the decoder, in order: a packet's payload, or a fill (``payload`` None)."""

    timestamp: int  # RTP timestamp (48 kHz)
    payload: bytes | None  # None: conceal ``samples`` samples
    samples: int = 0  # a fill's length, samples at 48 kHz
    fec: bytes | None = None  # a fill's next packet: its in-band FEC may carry this frame


@dataclass(slots=True)
class ReorderStats:
    """What the window did (cumulative)."""

    packets: int = 0  # received
    frames: int = 0  # released from packets, in order
    filled: int = 0  # missing frames filled (concealed by the decoder)
    fec: int = 0  # of those, decoded from the next packet (its FEC, else libopus conceals)
    reordered: int = 0  # arrived after a newer packet, put back in order in time
    late: int = 0  # arrived after their place was filled or passed: dropped
    duplicates: int = 0  # seen before: dropped
    dropped: int = 0  # waited past the depth + STALE_MS (the stream paused): dropped
    skipped: int = 0  # missing frames not filled (a gap, a new talkspurt, a reset)
    resets: int = 0  # a new SSRC or a restarted sequence

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _seq_delta(a: int, b: int) -> int:
    """a - b on 16-bit sequence numbers, in -32768..32767."""
    d = (a - b) % _SEQ_MOD
    return d - _SEQ_MOD if d >= _SEQ_MOD // 2 else d


@dataclass(slots=True)
class _Held:
    timestamp: int
    payload: bytes
    arrival_ms: float


@dataclass
class ReorderWindow:
    """Sequence-ordered release with a bounded hold (see the module docstring)."""

    depth_ms: float = DEFAULT_DEPTH_MS
    max_fill: int = MAX_FILL_FRAMES
    stats: ReorderStats = field(default_factory=ReorderStats)
    _ssrc: int | None = None
    _next: int | None = None  # the sequence number due next
    _last_ts: int = 0  # the timestamp of the last frame released
    _highest: int = 0  # the newest sequence number seen
    _held: dict[int, _Held] = field(default_factory=dict)
    _recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT))

    def __post_init__(self) -> None:
        if not 0 <= self.depth_ms <= MAX_DEPTH_MS:
            raise ValueError(f"the reordering depth must be within 0..{MAX_DEPTH_MS} ms")
        if self.max_fill < 0:
            raise ValueError("max_fill must be 0 or more")

    @property
    def held(self) -> int:
        """Packets waiting now."""
        return len(self._held)

    def push(
        self,
        seq: int,
        timestamp: int,
        payload: bytes,
        now_ms: float,
        *,
        ssrc: int = 0,
    ) -> list[Out]:
        """One arriving packet; the frames to decode now, in order (often none or one)."""
        self.stats.packets += 1
        out: list[Out] = []
        self._drop_stale(now_ms)
        if self._next is None or ssrc != self._ssrc:
            if self._next is not None:
                self._reset(out)
            self._start(seq, timestamp, payload, ssrc, out)
            return out
        d = _seq_delta(seq, self._next)
        if d < -MAX_MISORDER or d > MAX_DROPOUT:
            self._reset(out)
            self._start(seq, timestamp, payload, ssrc, out)
            return out
        if d < 0 or seq in self._held:
            if seq in self._held or seq in self._recent:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            self._expire(now_ms, out)
            return out
        if _seq_delta(seq, self._highest) < 0:
            self.stats.reordered += 1
        else:
            self._highest = seq
        if d == 0:
            self._release(seq, timestamp, payload, out)
            self._release_run(out)
        else:
            self._held[seq] = _Held(timestamp, payload, now_ms)
        self._expire(now_ms, out)
        return out

    # ------------------------------------------------------------ internals

    def _start(self, seq: int, timestamp: int, payload: bytes, ssrc: int, out: list[Out]) -> None:
        self._ssrc = ssrc
        self._highest = seq
        self._held.clear()
        self._recent.clear()
        self._next = seq
        self._last_ts = (timestamp - FRAME_SAMPLES) % _TS_MOD
        self._release(seq, timestamp, payload, out)

    def _reset(self, out: list[Out]) -> None:
        self.stats.resets += 1
        self._flush(out)

    def _release(self, seq: int, timestamp: int, payload: bytes, out: list[Out]) -> None:
        out.append(Out(timestamp, payload))
        self.stats.frames += 1
        self._recent.append(seq)
        self._last_ts = timestamp
        self._next = (seq + 1) % _SEQ_MOD

    def _release_run(self, out: list[Out]) -> None:
        """Release the held packets that now follow in sequence."""
        while self._next in self._held:
            seq = self._next
            held = self._held.pop(seq)
            self._release(seq, held.timestamp, held.payload, out)

    def _first_held(self) -> int:
        assert self._next is not None
        nxt = self._next
        return min(self._held, key=lambda s: _seq_delta(s, nxt))

    def _give_up_hole(self, out: list[Out], fill: bool) -> None:
        """Give up the hole before the first packet waiting: fill it (or skip it), release."""
        assert self._next is not None
        first = self._first_held()
        missing = _seq_delta(first, self._next)
        held = self._held[first]
        span = (held.timestamp - self._last_ts) % _TS_MOD
        per = span // (missing + 1)
        if (
            fill
            and 0 < missing <= self.max_fill
            and span == per * (missing + 1)
            and _MIN_FRAME <= per <= _MAX_FRAME
            and per % _MIN_FRAME == 0
        ):
            for i in range(1, missing + 1):
                fec = held.payload if i == missing else None
                out.append(Out((self._last_ts + i * per) % _TS_MOD, None, per, fec))
            self.stats.filled += missing
            self.stats.fec += 1
            self._last_ts = (self._last_ts + missing * per) % _TS_MOD
        else:
            self.stats.skipped += missing
        self._next = first
        self._release_run(out)

    def _expire(self, now_ms: float, out: list[Out]) -> None:
        """Give up holes while a packet has waited the depth, or too many wait."""
        while self._held and (
            len(self._held) > MAX_HELD
            or now_ms - min(h.arrival_ms for h in self._held.values()) >= self.depth_ms
        ):
            self._give_up_hole(out, fill=True)

    def _flush(self, out: list[Out]) -> None:
        """Release everything waiting, in order, without filling the holes."""
        while self._held:
            self._give_up_hole(out, fill=False)

    def _drop_stale(self, now_ms: float) -> None:
        """Drop what waited past the depth + STALE_MS (nothing came to give its hole up)."""
        if not self._held:
            return
        oldest = min(h.arrival_ms for h in self._held.values())
        if now_ms - oldest < self.depth_ms + STALE_MS:
            return
        assert self._next is not None
        nxt = self._next
        last = max(self._held, key=lambda s: _seq_delta(s, nxt))
        self.stats.dropped += len(self._held)
        self.stats.skipped += _seq_delta(last, nxt) + 1 - len(self._held)
        for seq in self._held:
            self._recent.append(seq)
        self._held.clear()
        self._next = (last + 1) % _SEQ_MOD
