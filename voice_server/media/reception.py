"""What the server has received from one talker: RFC 3550 reception statistics for its
microphone stream, turned into the report block the server sends back to it.

Why: a talker's encoder only protects its audio when it learns that packets are lost. Chromium's
Opus encoder takes the ``fraction lost`` of the receiver reports it gets for its stream as the
expected loss rate and turns its in-band FEC on (``useinbandfec=1`` is in our SDP) once loss
appears; before this module the server never reported, so the encoder saw 0 % loss forever.

Pure logic (no sockets, no clock): :meth:`Reception.packet` per received RTP packet (RFC 3550
A.1 sequence bookkeeping, A.8 interarrival jitter), :meth:`Reception.sender_report` when the
talker's SR arrives (for LSR/DLSR, so the talker can compute its round-trip time), and
:meth:`Reception.block` once per report interval (A.3: fraction lost since the previous block
and the cumulative count). ``fold`` lets the caller raise the reported fraction to the worst
listener's downlink loss (see :func:`folded_fraction`); the cumulative count and the highest
sequence number stay the uplink's own.
"""

from __future__ import annotations

from voice_server.media.rtcp import ReportBlock, ntp_short

__all__ = ["KEEPALIVE_MIN_PACKETS", "MAX_DROPOUT", "MAX_MISORDER", "Reception", "folded_fraction"]

MAX_DROPOUT = 3000  # RFC 3550 A.1: a jump this far ahead is a restart, not loss
MAX_MISORDER = 100
SEQ_MOD = 1 << 16
#: a talker is sending voice (not Opus DTX, one packet per 400 ms) when this many of its packets
#: arrived since the previous keepalive round (:meth:`Reception.voiced_since_mark`; a round is
#: 100 ms, five 20 ms packets of voice, which arrive unevenly: 3 and 7 in successive rounds)
KEEPALIVE_MIN_PACKETS = 2


def folded_fraction(uplink: int, listeners: list[int]) -> int:
    """The fraction lost (1/256 units) reported to a talker: its uplink's, or the worst recent
    listener's downlink loss when that is higher (the talker's FEC protects the whole path)."""
    return max([uplink, *listeners]) & 0xFF


class Reception:
    """Reception statistics of one incoming SSRC; a new SSRC restarts them."""

    __slots__ = (
        "_arrival_prev",
        "_expected_prior",
        "_keepalive_mark",
        "_received_prior",
        "_sr_arrival",
        "_transit",
        "bad_seq",
        "base_seq",
        "clock_rate",
        "cycles",
        "fec_packets",
        "jitter",
        "last_packet_at",
        "lsr",
        "max_seq",
        "received",
        "ssrc",
    )

    def __init__(self, clock_rate: int = 48000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self._reset(0)
        self.lsr = 0
        self._sr_arrival = 0.0
        self.last_packet_at = 0.0
        #: its packets carrying Opus in-band FEC (counted by the endpoint, media/opus_fec.py)
        self.fec_packets = 0
        self._keepalive_mark = 0

    def _reset(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.cycles = 0
        self.bad_seq = SEQ_MOD + 1
        self.received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self.jitter = 0.0
        self._transit: int | None = None
        self._arrival_prev = 0.0

    # ------------------------------------------------------------------ input
    def packet(self, seq: int, rtp_ts: int, ssrc: int, arrival: float) -> None:
        """One RTP packet that arrived at ``arrival`` seconds (any monotonic clock)."""
        if ssrc != self.ssrc:
            self.ssrc = ssrc
            self._reset(seq)
            self.lsr = 0
        elif not self._sequence(seq):
            return
        self.received += 1
        self.last_packet_at = arrival
        # A.8: transit time in RTP units; jitter += (|D| - jitter) / 16
        transit = int(arrival * self.clock_rate) - rtp_ts
        if self._transit is not None:
            d = transit - self._transit
            # RTP timestamps wrap at 2^32: fold the difference into a signed 32-bit range
            d = (d + (1 << 31)) % (1 << 32) - (1 << 31)
            self.jitter += (abs(d) - self.jitter) / 16.0
        self._transit = transit

    def _sequence(self, seq: int) -> bool:
        """A.1's update_seq: False for a packet that does not count (a restart's first)."""
        delta = (seq - self.max_seq) % SEQ_MOD
        if delta < MAX_DROPOUT:
            if seq < self.max_seq:  # wrapped
                self.cycles += SEQ_MOD
            self.max_seq = seq
        elif delta <= SEQ_MOD - MAX_MISORDER:  # a big jump
            if seq == self.bad_seq:  # two in a row: the sender restarted its numbering
                self._reset(seq)
            else:
                self.bad_seq = (seq + 1) % SEQ_MOD
                return False
        # else: duplicate or misordered within MAX_MISORDER: counted as received
        return True

    def sender_report(self, ntp: int, arrival: float) -> None:
        """The talker's SR for this stream arrived (its NTP timestamp) at ``arrival``."""
        self.lsr = ntp_short(ntp)
        self._sr_arrival = arrival

    def voiced_since_mark(self) -> bool:
        """At least KEEPALIVE_MIN_PACKETS packets arrived since the previous call (a talker
        sending voice gets the server's RTCP keepalives; one in DTX silence does not); moves the
        mark. A new SSRC (its count restarted) counts from zero."""
        if self.received < self._keepalive_mark:
            self._keepalive_mark = 0
        voiced = self.received - self._keepalive_mark >= KEEPALIVE_MIN_PACKETS
        self._keepalive_mark = self.received
        return voiced

    # ------------------------------------------------------------------ output
    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def block(self, now: float, fold: int = 0) -> ReportBlock | None:
        """The report block for the next report (None before any packet); advances the
        interval. ``fold``: a fraction (1/256) the reported fraction is raised to at least."""
        if self.ssrc is None or self.received == 0:
            return None
        expected = self.expected
        interval_expected = expected - self._expected_prior
        interval_received = self.received - self._received_prior
        self._expected_prior, self._received_prior = expected, self.received
        interval_lost = interval_expected - interval_received
        fraction = 0
        if interval_expected > 0 and interval_lost > 0:
            fraction = min(255, (interval_lost << 8) // interval_expected)
        dlsr = 0
        if self.lsr:
            dlsr = int(max(0.0, now - self._sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            ssrc=self.ssrc,
            fraction_lost=folded_fraction(fraction, [fold]),
            packets_lost=self.lost,
            highest_sequence=self.extended_max & 0xFFFFFFFF,
            jitter=int(self.jitter) & 0xFFFFFFFF,
            lsr=self.lsr,
            dlsr=dlsr,
        )
