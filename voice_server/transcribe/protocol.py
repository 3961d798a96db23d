"""The server ↔ transcriber link, version 1 (pure): messages and packet frames.

One WebSocket at ``/internal/transcription`` (docs/transcription.md). Text frames are JSON
objects with ``type``; binary frames carry RTP packets of live bursts, each record being
``burst number (u32, big endian) | length (u16) | the RTP packet`` (decrypted, as received).
"""

from __future__ import annotations

import json
import struct
from typing import Any

__all__ = ["LinkError", "pack_packets", "parse_json", "unpack_packets"]

VERSION = 1
MAX_TEXT = 64 * 1024
_RECORD = struct.Struct("!IH")


class LinkError(ValueError):
    """A link message that cannot be used."""


def pack_packets(records: list[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for no, packet in records:
        out += _RECORD.pack(no, len(packet))
        out += packet
    return bytes(out)


def unpack_packets(frame: bytes) -> list[tuple[int, bytes]]:
    records: list[tuple[int, bytes]] = []
    pos, n = 0, len(frame)
    while pos < n:
        if pos + _RECORD.size > n:
            raise LinkError("truncated packet record")
        no, length = _RECORD.unpack_from(frame, pos)
        pos += _RECORD.size
        if pos + length > n:
            raise LinkError("truncated packet")
        records.append((no, frame[pos : pos + length]))
        pos += length
    return records


def parse_json(text: str) -> dict[str, Any]:
    if len(text) > MAX_TEXT:
        raise LinkError("message too large")
    try:
        msg = json.loads(text)
    except ValueError:
        raise LinkError("not JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise LinkError("not a message object")
    return msg


def dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


__all__ += ["VERSION", "dumps"]
