"""Audio redundancy (RFC 2198 "RED") on plain RTP packets, without decoding (pure).

A RED payload is a list of block headers then the blocks' data, oldest first, the primary
(current) encoding last::

    redundant block header (4 bytes): F=1 | block PT (7) | timestamp offset (14) | length (10)
    primary block header   (1 byte):  F=0 | block PT (7)

Chromium sends Opus in RED (payload type :data:`RED_PT`, ``a=fmtp:63 111/111``) when it is
first in the negotiated list: each packet carries the current 20 ms frame and the previous
one(s). The server forwards RED as it is to listeners that negotiated it; the others (the
aiortc headset client), the call-log tap and the transcription get the primary frame alone,
re-packed as a plain Opus packet behind the same RTP header (:func:`primary_packet`); the tap
also gets the frames a gap lost, recovered from the redundancy (:func:`recovered`).

A payload is *malformed* (:class:`RedError`) when its headers do not fit, its lengths do not
add up to the payload, a block is not Opus, the timestamp offsets are not strictly decreasing
towards the primary (each older block is older), or it has more than :data:`MAX_BLOCKS`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from voice_server.media.errors import PacketError
from voice_server.media.rtp import read_header

__all__ = [
    "MAX_BLOCKS",
    "RED_PT",
    "RedError",
    "Redundancy",
    "build_payload",
    "log_packets",
    "parse_payload",
    "primary_packet",
    "recovered",
]

RED_PT = 63  # Chromium's own choice for red/48000/2
OPUS_PT = 111
MAX_BLOCKS = 8  # redundant blocks; Chromium sends 1 or 2
MAX_OFFSET = (1 << 14) - 1
MAX_LENGTH = (1 << 10) - 1


class RedError(PacketError):
    """A RED payload whose block headers, lengths or timestamps are inconsistent."""


#: (timestamp offset, start, end) of each redundant block in the payload, oldest first, and the
#: primary block's (start, end)
Redundancy = tuple[tuple[tuple[int, int, int], ...], tuple[int, int]]


def parse_payload(
    payload: bytes | bytearray | memoryview, start: int = 0, end: int | None = None,
    *, block_pt: int = OPUS_PT,
) -> Redundancy:  # fmt: skip
    """Positions of the blocks of the RED payload ``payload[start:end]``; raises
    :class:`RedError` when it is malformed (see the module docstring)."""
    if end is None:
        end = len(payload)
    pos = start
    heads: list[tuple[int, int]] = []
    while True:
        if pos >= end:
            raise RedError("RED block headers run past the payload")
        b = payload[pos]
        if b & 0x7F != block_pt:
            raise RedError(f"RED block of payload type {b & 0x7F}, not {block_pt}")
        if not b & 0x80:
            pos += 1
            break
        if pos + 4 > end:
            raise RedError("RED block header truncated")
        if len(heads) == MAX_BLOCKS:
            raise RedError(f"RED with more than {MAX_BLOCKS} redundant blocks")
        word = (payload[pos + 1] << 16) | (payload[pos + 2] << 8) | payload[pos + 3]
        offset, length = word >> 10, word & 0x3FF
        if offset == 0 or (heads and offset >= heads[-1][0]):
            raise RedError("RED timestamp offsets must decrease towards the primary")
        heads.append((offset, length))
        pos += 4
    blocks = []
    for offset, length in heads:
        if pos + length > end:
            raise RedError("RED block lengths exceed the payload")
        blocks.append((offset, pos, pos + length))
        pos += length
    return tuple(blocks), (pos, end)


def build_payload(
    primary: bytes, redundant: Sequence[tuple[int, bytes]] = (), *, block_pt: int = OPUS_PT
) -> bytes:
    """A RED payload: ``redundant`` as (timestamp offset, frame), oldest first, then
    ``primary``. Raises ValueError on what RFC 2198 cannot carry."""
    if len(redundant) > MAX_BLOCKS:
        raise ValueError(f"at most {MAX_BLOCKS} redundant blocks")
    heads = bytearray()
    last = MAX_OFFSET + 1
    for offset, frame in redundant:
        if not 0 < offset < last or len(frame) > MAX_LENGTH:
            raise ValueError("offsets must decrease (1..16383), frames at most 1023 bytes")
        last = offset
        heads.append(0x80 | block_pt)
        heads += ((offset << 10) | len(frame)).to_bytes(3, "big")
    heads.append(block_pt)
    return bytes(heads) + b"".join(frame for _, frame in redundant) + primary


def _body(packet: bytes | bytearray) -> tuple[int, int]:
    """(header length, payload end) of a plain RTP packet, its padding removed."""
    hlen = read_header(packet)[5]
    end = len(packet)
    if packet[0] & 0x20:
        end -= packet[-1]
        if end < hlen:
            raise PacketError("RTP padding longer than the payload")
    return hlen, end


def primary_packet(packet: bytes | bytearray, *, payload_type: int = OPUS_PT) -> bytes:
    """The RED packet ``packet`` as a plain Opus packet: the same header (payload type
    ``payload_type``, no padding) followed by the primary block alone."""
    hlen, end = _body(packet)
    _, (p0, p1) = parse_payload(packet, hlen, end)
    head = bytearray(packet[:hlen])
    head[0] &= 0xDF  # no padding any more
    head[1] = (head[1] & 0x80) | payload_type
    return bytes(head) + bytes(packet[p0:p1])


def recovered(
    packet: bytes | bytearray, missing: int, *, payload_type: int = OPUS_PT
) -> list[bytes]:
    """Plain Opus packets for the ``missing`` packets just before ``packet`` (sequence numbers
    ``seq - missing .. seq - 1``) that its redundant blocks carry, oldest first: the newest
    block is taken as ``seq - 1``, the next older as ``seq - 2`` and so on (Chromium sends one
    frame per packet); each with the block's timestamp, no marker, the same extensions."""
    if missing <= 0:
        return []
    hlen, end = _body(packet)
    blocks, _ = parse_payload(packet, hlen, end)
    seq = (packet[2] << 8) | packet[3]
    ts = int.from_bytes(packet[4:8], "big")
    out = []
    n = len(blocks)
    for k, (offset, b0, b1) in enumerate(blocks):
        back = n - k  # 1 for the newest redundant block
        if back > missing or b1 == b0:
            continue
        head = bytearray(packet[:hlen])
        head[0] &= 0xDF
        head[1] = payload_type
        struct.pack_into("!HI", head, 2, (seq - back) & 0xFFFF, (ts - offset) & 0xFFFFFFFF)
        out.append(bytes(head) + bytes(packet[b0:b1]))
    return out


def log_packets(packet: bytes | bytearray, last_seq: int | None) -> list[bytes]:
    """What the call log gets for the RED packet ``packet`` (already checked): the frames its
    redundancy recovers of the packets lost since ``last_seq`` (the last sequence number the
    log got, None: none yet), then its primary frame; each a plain Opus packet."""
    out: list[bytes] = []
    if last_seq is not None:
        missing = (((packet[2] << 8) | packet[3]) - last_seq - 1) & 0xFFFF
        if 0 < missing <= MAX_BLOCKS:
            out = recovered(packet, missing)
    out.append(primary_packet(packet))
    return out
