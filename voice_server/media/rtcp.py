"""RTCP compound packets: SR, RR, SDES, BYE; other types kept opaque.

RFC 3550 section 6.4 (SR, RR and report blocks), 6.5 (SDES), 6.6 (BYE), appendix A.2
(validity: version 2 on every packet, lengths adding up exactly to the compound). Feedback
(RFC 4585 RTPFB 205 / PSFB 206), XR (RFC 3611, 207), APP (204) and any other type are skipped
by their length and returned as :class:`UnknownRtcp`.

The compound given to :func:`parse_compound` is the *unprotected* SRTCP payload (call
``pylibsrtp.Session.unprotect_rtcp`` first). NTP timestamps are 64-bit fixed point seconds
since 1900 (RFC 3550 section 4); :func:`ntp_from_unix` and :func:`unix_from_ntp` convert.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from voice_server.media.errors import PacketError

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcp",
    "build_receiver_report",
    "build_sender_report",
    "ntp_from_unix",
    "ntp_short",
    "parse_compound",
    "unix_from_ntp",
]

SR = 200
RR = 201
SDES = 202
BYE = 203
SDES_CNAME = 1
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

_HEAD = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")  # ssrc, ntp, rtp ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction|lost, highest seq, jitter, lsr, dlsr


def ntp_from_unix(t: float) -> int:
    """64-bit NTP timestamp for a unix time in seconds."""
    return round((t + NTP_EPOCH_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def unix_from_ntp(ntp: int) -> float:
    """Unix time in seconds for a 64-bit NTP timestamp."""
    return ntp / 4294967296.0 - NTP_EPOCH_OFFSET


def ntp_short(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what report blocks carry as LSR."""
    return (ntp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 section 6.4.1), 24 bytes."""

    ssrc: int
    #: fraction of packets lost since the last report, in 1/256 units (0..255)
    fraction_lost: int
    #: cumulative number of packets lost, signed 24 bits (duplicates can make it negative)
    packets_lost: int
    #: extended highest sequence number received (cycles << 16 | seq)
    highest_sequence: int
    #: interarrival jitter in RTP timestamp units
    jitter: int
    #: middle 32 bits of the last SR's NTP timestamp, 0 if none
    lsr: int
    #: delay since that SR, in 1/65536 seconds
    dlsr: int

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        """Parse one block at ``offset``; raise :class:`PacketError` if it does not fit."""
        if offset < 0 or len(data) < offset + 24:
            raise PacketError("RTCP report block truncated")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def __bytes__(self) -> bytes:
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return _BLOCK.pack(
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | lost,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _packet(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError("at most 31 report blocks / chunks / sources per RTCP packet")
    if len(body) & 3:
        raise ValueError("RTCP body must be a multiple of 4 bytes")
    return _HEAD.pack(0x80 | count, packet_type, len(body) >> 2) + body


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (PT 200). Profile-specific extensions after the blocks are ignored."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @property
    def unix_time(self) -> float:
        return unix_from_ntp(self.ntp_timestamp)

    def __bytes__(self) -> bytes:
        body = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        return _packet(SR, len(self.reports), body + b"".join(map(bytes, self.reports)))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (PT 201). Profile-specific extensions after the blocks are ignored."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __bytes__(self) -> bytes:
        body = _U32.pack(self.ssrc) + b"".join(map(bytes, self.reports))
        return _packet(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its ``(item type, value)`` items (CNAME is type 1)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()

    @property
    def cname(self) -> str | None:
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", errors="replace")
        return None

    def __bytes__(self) -> bytes:
        out = bytearray(_U32.pack(self.ssrc))
        for kind, value in self.items:
            if not 1 <= kind <= 255 or len(value) > 255:
                raise ValueError("bad SDES item")
            out += bytes((kind, len(value))) + value
        out += bytes(4 - (len(out) & 3))  # the null terminator and padding: 1-4 zero bytes
        return bytes(out)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (PT 202)."""

    chunks: tuple[SdesChunk, ...] = ()

    def __bytes__(self) -> bytes:
        return _packet(SDES, len(self.chunks), b"".join(map(bytes, self.chunks)))


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (PT 203) with an optional reason."""

    ssrcs: tuple[int, ...] = ()
    reason: str | None = None

    def __bytes__(self) -> bytes:
        body = b"".join(_U32.pack(s) for s in self.ssrcs)
        if self.reason is not None:
            text = self.reason.encode("utf-8")[:255]
            body += bytes((len(text),)) + text
            body += bytes(-len(body) & 3)
        return _packet(BYE, len(self.ssrcs), body)


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """Any other packet type (feedback, XR, APP...): header fields and body (padding removed)."""

    packet_type: int
    count: int  # the 5-bit RC/SC/FMT field
    body: bytes

    def __bytes__(self) -> bytes:
        return _packet(self.packet_type, self.count, self.body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcp


def _blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    return tuple(ReportBlock.parse(body, offset + 24 * i) for i in range(count))


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks: list[SdesChunk] = []
    pos, end = 0, len(body)
    for _ in range(count):
        if pos + 4 > end:
            raise PacketError("RTCP SDES chunk truncated")
        ssrc = _U32.unpack_from(body, pos)[0]
        pos += 4
        items: list[tuple[int, bytes]] = []
        while True:
            if pos >= end:
                raise PacketError("RTCP SDES chunk has no terminator")
            kind = body[pos]
            if kind == 0:
                pos = (pos + 4) & ~3  # null item, then padding to the next word
                break
            if pos + 2 > end or pos + 2 + body[pos + 1] > end:
                raise PacketError("RTCP SDES item truncated")
            length = body[pos + 1]
            items.append((kind, body[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    if any(body[pos:]):
        raise PacketError("RTCP SDES has trailing data")
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    n = 4 * count
    if len(body) < n:
        raise PacketError("RTCP BYE truncated")
    ssrcs = struct.unpack_from(f"!{count}I", body, 0)
    reason: str | None = None
    if len(body) > n:
        length = body[n]
        if n + 1 + length > len(body):
            raise PacketError("RTCP BYE reason truncated")
        reason = body[n + 1 : n + 1 + length].decode("utf-8", errors="replace")
    return Bye(tuple(ssrcs), reason)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raise :class:`PacketError` if any part is malformed.

    Every packet must have version 2 and a length that stays inside ``data``, and the lengths
    must add up to ``len(data)`` exactly.
    """
    n = len(data)
    if n < 4:
        raise PacketError("RTCP packet shorter than 4 bytes")
    out: list[RtcpPacket] = []
    pos = 0
    while pos < n:
        if pos + 4 > n:
            raise PacketError("RTCP header truncated")
        b0, ptype, words = _HEAD.unpack_from(data, pos)
        if b0 & 0xC0 != 0x80:
            raise PacketError("RTCP version is not 2")
        end = pos + 4 + 4 * words
        if end > n:
            raise PacketError("RTCP length overruns the compound packet")
        body = bytes(data[pos + 4 : end])
        pos = end
        if b0 & 0x20:
            if not body or not body[-1] or body[-1] > len(body):
                raise PacketError("RTCP padding length is invalid")
            body = body[: -body[-1]]
        count = b0 & 0x1F
        if ptype == SR:
            if len(body) < 24 + 24 * count:
                raise PacketError("RTCP SR too short for its report count")
            ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body, 0)
            out.append(SenderReport(ssrc, ntp, rtp_ts, packets, octets, _blocks(body, 24, count)))
        elif ptype == RR:
            if len(body) < 4 + 24 * count:
                raise PacketError("RTCP RR too short for its report count")
            out.append(ReceiverReport(_U32.unpack_from(body, 0)[0], _blocks(body, 4, count)))
        elif ptype == SDES:
            out.append(_parse_sdes(body, count))
        elif ptype == BYE:
            out.append(_parse_bye(body, count))
        else:
            out.append(UnknownRtcp(ptype, count, body))
    return out


def _sdes_cname(ssrc: int, cname: str | None) -> bytes:
    if cname is None:
        return b""
    return bytes(SourceDescription((SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),)),)))


def build_sender_report(
    *,
    ssrc: int,
    unix_time: float,
    rtp_timestamp: int,
    packet_count: int,
    octet_count: int,
    cname: str | None = None,
    reports: Sequence[ReportBlock] = (),
) -> bytes:
    """A compound SR for one SSRC (optionally followed by SDES with its CNAME)."""
    sr = SenderReport(
        ssrc,
        ntp_from_unix(unix_time),
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,
        octet_count & 0xFFFFFFFF,
        tuple(reports),
    )
    return bytes(sr) + _sdes_cname(ssrc, cname)


def build_receiver_report(
    *, ssrc: int, reports: Sequence[ReportBlock] = (), cname: str | None = None
) -> bytes:
    """A compound RR (optionally followed by SDES with the CNAME), for simulated listeners."""
    return bytes(ReceiverReport(ssrc, tuple(reports))) + _sdes_cname(ssrc, cname)
