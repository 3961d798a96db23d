"""RTP packets: fixed header, header extensions, client-to-mixer audio level.

- RFC 3550 section 5.1: the fixed header (V=2, P, X, CC, M, PT, sequence number, timestamp,
  SSRC, CSRC list) and padding.
- RFC 8285: the header extension block, one-byte form (profile 0xBEDE, ids 1-14, 1-16 bytes)
  and two-byte form (profile 0x100X, ids 1-255, 0-255 bytes).
- RFC 6464: ``urn:ietf:params:rtp-hdrext:ssrc-audio-level``, one byte ``V | level`` where the
  level is 0..127 meaning -dBov (127 = silence) and V the sender's voice-activity flag.

SRTP (RFC 3711) encrypts only the payload: the header and its extensions stay readable, so
:func:`read_header` and :func:`audio_level` work on SRTP packets too (the authentication tag
counts as payload there).

Hot path (the forwarder, per packet): :func:`read_header`, :func:`audio_level` and
:func:`rewrite_header` (or :func:`rewritten`) build no objects beyond a small tuple.
:class:`RtpPacket` and :func:`build_rtp` are for tests, tools and simulated participants.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from voice_server.media.errors import PacketError

__all__ = [
    "AUDIO_LEVEL_URI",
    "RtpPacket",
    "audio_level",
    "build_rtp",
    "pack_extensions",
    "parse_extensions",
    "payload_of",
    "read_header",
    "rewrite_header",
    "rewritten",
]

AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
ONE_BYTE_PROFILE = 0xBEDE
TWO_BYTE_PROFILE = 0x1000
HEADER_LENGTH = 12

_FIXED = struct.Struct("!BBHII")
_EXT_HEAD = struct.Struct("!HH")
_REWRITE = struct.Struct("!BHII")  # byte 1 (M|PT), seq, timestamp, ssrc
_U32 = struct.Struct("!I")


def read_header(data: bytes | bytearray | memoryview) -> tuple[int, bool, int, int, int, int]:
    """Return ``(payload_type, marker, seq, timestamp, ssrc, header_length)`` of an RTP packet.

    ``header_length`` covers the fixed header, CSRCs and the extension block: the payload (or
    the SRTP ciphertext) starts there. Raises :class:`PacketError` if the version is not 2 or
    the header does not fit in ``data``. Padding is not examined.
    """
    n = len(data)
    if n < HEADER_LENGTH:
        raise PacketError("RTP packet shorter than 12 bytes")
    b0, b1, seq, ts, ssrc = _FIXED.unpack_from(data, 0)
    if b0 & 0xC0 != 0x80:
        raise PacketError("RTP version is not 2")
    hlen = HEADER_LENGTH + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if n < hlen + 4:
            raise PacketError("RTP extension header truncated")
        hlen += 4 + (((data[hlen + 2] << 8) | data[hlen + 3]) << 2)
    if hlen > n:
        raise PacketError("RTP header longer than the packet")
    return b1 & 0x7F, bool(b1 & 0x80), seq, ts, ssrc, hlen


def payload_of(data: bytes | bytearray | memoryview) -> tuple[int, int, bytes]:
    """``(seq, timestamp, payload)`` of a plain RTP packet, its padding removed (the one place
    the transcription side finds the Opus frame). Raises :class:`PacketError` like
    :func:`read_header`."""
    _pt, _m, seq, ts, _ssrc, hlen = read_header(data)
    end = len(data)
    if data[0] & 0x20 and end > hlen:
        end -= data[-1]
    return seq, ts, bytes(data[hlen:end])


def _extension_block(data: bytes | bytearray | memoryview) -> tuple[int, int, int] | None:
    """(profile, start, end) of the extension body, None if X is clear."""
    n = len(data)
    if n < HEADER_LENGTH:
        raise PacketError("RTP packet shorter than 12 bytes")
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        raise PacketError("RTP version is not 2")
    if not b0 & 0x10:
        return None
    pos = HEADER_LENGTH + ((b0 & 0x0F) << 2)
    if n < pos + 4:
        raise PacketError("RTP extension header truncated")
    profile, words = _EXT_HEAD.unpack_from(data, pos)
    end = pos + 4 + (words << 2)
    if end > n:
        raise PacketError("RTP extension block longer than the packet")
    return profile, pos + 4, end


def audio_level(data: bytes | bytearray | memoryview, ext_id: int) -> tuple[bool, int] | None:
    """RFC 6464 ``(voice_activity, level)`` from extension ``ext_id``; None if absent.

    ``level`` is 0..127, i.e. -dBov: 0 is loudest, 127 silence. Chromium sets the V flag on
    every packet, so judge speech by the level. Raises :class:`PacketError` on a malformed
    header or extension block.
    """
    block = _extension_block(data)
    if block is None:
        return None
    profile, i, end = block
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = data[i]
            if b == 0:  # padding
                i += 1
                continue
            xid = b >> 4
            if xid == 15:  # reserved: stop processing (RFC 8285 section 4.2)
                return None
            length = (b & 0x0F) + 1
            if i + 1 + length > end:
                raise PacketError("RTP one-byte extension element truncated")
            if xid == ext_id:
                v = data[i + 1]
                return bool(v & 0x80), v & 0x7F
            i += 1 + length
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while i < end:
            xid = data[i]
            if xid == 0:
                i += 1
                continue
            if i + 2 > end:
                raise PacketError("RTP two-byte extension element truncated")
            length = data[i + 1]
            if i + 2 + length > end:
                raise PacketError("RTP two-byte extension element truncated")
            if xid == ext_id:
                if length < 1:
                    raise PacketError("empty audio-level extension")
                v = data[i + 2]
                return bool(v & 0x80), v & 0x7F
            i += 2 + length
    return None


def rewrite_header(
    buf: bytearray,
    *,
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    marker: bool | None = None,
) -> None:
    """Overwrite M/PT, sequence number, timestamp and SSRC of an RTP packet in place.

    ``seq`` and ``timestamp`` are reduced modulo 2**16 and 2**32, so callers may add offsets
    freely. ``marker=None`` keeps the packet's marker bit. No validation (hot path): ``buf``
    must already have passed :func:`read_header`.
    """
    m = buf[1] & 0x80 if marker is None else (0x80 if marker else 0)
    _REWRITE.pack_into(buf, 1, m | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)


def rewritten(
    data: bytes,
    *,
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    marker: bool | None = None,
) -> bytes:
    """Like :func:`rewrite_header` but returns new ``bytes`` (what ``pylibsrtp`` accepts).

    One copy of the packet instead of two (``bytearray`` then ``bytes``).
    """
    m = data[1] & 0x80 if marker is None else (0x80 if marker else 0)
    head = _REWRITE.pack(m | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    return b"".join((data[:1], head, data[12:]))


def parse_extensions(profile: int, body: bytes) -> tuple[tuple[int, bytes], ...]:
    """Split an RFC 8285 extension body into ``(id, value)`` elements.

    Unknown profiles yield no elements (the block is opaque). Raises :class:`PacketError` if an
    element overruns the body.
    """
    out: list[tuple[int, bytes]] = []
    i, end = 0, len(body)
    if profile == ONE_BYTE_PROFILE:
        while i < end:
            b = body[i]
            if b == 0:
                i += 1
                continue
            if b >> 4 == 15:
                break
            length = (b & 0x0F) + 1
            if i + 1 + length > end:
                raise PacketError("RTP one-byte extension element truncated")
            out.append((b >> 4, body[i + 1 : i + 1 + length]))
            i += 1 + length
    elif profile & 0xFFF0 == TWO_BYTE_PROFILE:
        while i < end:
            if body[i] == 0:
                i += 1
                continue
            if i + 2 > end or i + 2 + body[i + 1] > end:
                raise PacketError("RTP two-byte extension element truncated")
            length = body[i + 1]
            out.append((body[i], body[i + 2 : i + 2 + length]))
            i += 2 + length
    return tuple(out)


def pack_extensions(elements: Sequence[tuple[int, bytes]]) -> tuple[int, bytes]:
    """Serialize ``(id, value)`` elements as an RFC 8285 block: ``(profile, padded body)``.

    The one-byte form is used when every id is 1-14 and every value 1-16 bytes long, the
    two-byte form otherwise (ids 1-255, values 0-255 bytes). Raises ValueError on bad input.
    """
    one_byte = all(1 <= xid <= 14 and 1 <= len(v) <= 16 for xid, v in elements)
    parts: list[bytes] = []
    for xid, value in elements:
        if not 1 <= xid <= 255 or len(value) > 255:
            raise ValueError(f"bad RTP header extension element id={xid} len={len(value)}")
        if one_byte:
            parts.append(bytes(((xid << 4) | (len(value) - 1),)) + value)
        else:
            parts.append(bytes((xid, len(value))) + value)
    body = b"".join(parts)
    body += bytes(-len(body) & 3)
    return (ONE_BYTE_PROFILE if one_byte else TWO_BYTE_PROFILE), body


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """A whole RTP packet (RFC 3550 section 5.1), extension kept as a raw block."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    #: None when the X bit is clear
    extension_profile: int | None = None
    #: the extension body, a multiple of 4 bytes (see :meth:`extensions`)
    extension: bytes = b""
    #: number of padding octets including the count octet, 0 for none
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse an RTP packet; raise :class:`PacketError` if it is malformed."""
        pt, marker, seq, ts, ssrc, hlen = read_header(data)
        b0 = data[0]
        cc = b0 & 0x0F
        csrc = struct.unpack_from(f"!{cc}I", data, HEADER_LENGTH) if cc else ()
        profile: int | None = None
        extension = b""
        if b0 & 0x10:
            ext_pos = HEADER_LENGTH + 4 * cc
            profile = _EXT_HEAD.unpack_from(data, ext_pos)[0]
            extension = bytes(data[ext_pos + 4 : hlen])
        padding = 0
        end = len(data)
        if b0 & 0x20:
            padding = data[-1]
            if padding == 0 or padding > end - hlen:
                raise PacketError("RTP padding length is invalid")
            end -= padding
        return cls(
            payload_type=pt,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[hlen:end]),
            marker=marker,
            csrc=tuple(csrc),
            extension_profile=profile,
            extension=extension,
            padding_size=padding,
        )

    def extensions(self) -> tuple[tuple[int, bytes], ...]:
        """The RFC 8285 elements of the extension block (empty if none or unknown profile)."""
        if self.extension_profile is None:
            return ()
        return parse_extensions(self.extension_profile, self.extension)

    def __bytes__(self) -> bytes:
        if len(self.extension) & 3:
            raise ValueError("RTP extension body must be a multiple of 4 bytes")
        has_ext = self.extension_profile is not None
        b0 = 0x80 | (0x20 if self.padding_size else 0) | (0x10 if has_ext else 0)
        head = _FIXED.pack(
            b0 | len(self.csrc),
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence_number,
            self.timestamp,
            self.ssrc,
        )
        parts = [head, *(_U32.pack(c) for c in self.csrc)]
        if self.extension_profile is not None:
            parts.append(_EXT_HEAD.pack(self.extension_profile, len(self.extension) >> 2))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


def build_rtp(
    *,
    payload_type: int,
    seq: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    audio_level: tuple[bool, int] | None = None,
    audio_level_id: int = 1,
) -> bytes:
    """Serialize an RTP packet, optionally with an RFC 6464 audio level ``(vad, 0..127)``.

    ``seq`` and ``timestamp`` are reduced modulo 2**16 and 2**32.
    """
    if not 0 <= payload_type <= 127:
        raise ValueError(f"bad payload type {payload_type}")
    profile: int | None = None
    ext = b""
    if audio_level is not None:
        vad, level = audio_level
        if not 0 <= level <= 127:
            raise ValueError(f"audio level out of range: {level}")
        profile, ext = pack_extensions([(audio_level_id, bytes(((0x80 if vad else 0) | level,)))])
    return bytes(
        RtpPacket(
            payload_type=payload_type,
            sequence_number=seq & 0xFFFF,
            timestamp=timestamp & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=payload,
            marker=marker,
            extension_profile=profile,
            extension=ext,
        )
    )
