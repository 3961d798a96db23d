"""Demultiplexing of one UDP port between STUN, DTLS and SRTP/SRTCP.

RFC 7983 (updating RFC 5764 section 5.1.2) classifies a datagram by its first byte:

====================  =========
first byte            protocol
====================  =========
0 - 3                 STUN
20 - 63               DTLS
128 - 191             RTP / RTCP
====================  =========

RTP and RTCP share the port (``a=rtcp-mux``); RFC 5761 section 4 tells them apart by the second
byte: RTCP packet types 192-223 (SR 200, RR 201, ...) occupy the range that would be the marker
bit + payload types 64-95 in RTP, which must therefore never be used as RTP payload types.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["Kind", "classify", "is_rtcp"]


class Kind(IntEnum):
    """The protocol of a datagram on the media port."""

    UNKNOWN = 0
    STUN = 1
    DTLS = 2
    RTP = 3  # RTP or RTCP: see :func:`is_rtcp`


# One lookup per datagram: a 256-entry table indexed by the first byte.
_TABLE: tuple[Kind, ...] = tuple(
    Kind.STUN
    if b <= 3
    else Kind.DTLS
    if 20 <= b <= 63
    else Kind.RTP
    if 128 <= b <= 191
    else Kind.UNKNOWN
    for b in range(256)
)


def classify(data: bytes) -> Kind:
    """Return the protocol of ``data`` by its first byte (RFC 7983); empty data is UNKNOWN."""
    if not data:
        return Kind.UNKNOWN
    return _TABLE[data[0]]


def is_rtcp(data: bytes) -> bool:
    """True if ``data`` is an RTP-version packet whose second byte is an RTCP type (192-223).

    Call it on datagrams :func:`classify` put in :attr:`Kind.RTP`; it also checks the version
    bits itself, so any bytes are safe.
    """
    return len(data) >= 2 and (data[0] & 0xC0) == 0x80 and 192 <= data[1] <= 223
