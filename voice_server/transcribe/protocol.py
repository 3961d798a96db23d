"""The server ↔ transcriber link, version 1 (pure): messages and packet frames.

One WebSocket at ``/internal/transcription`` (docs/transcription.md). Text frames are JSON
objects with ``type``; binary frames carry RTP packets of live bursts, each record being
``burst number (u32, big endian) | length (u16) | the RTP packet`` (decrypted, as received).
The burst messages (``burst_start``, ``burst_end``) are built and parsed here, for both ends.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import BURST_ID_RE, KINDS
from voice_server.names import CHANNEL_NAME_RE as NAME_RE

__all__ = ["LinkError", "pack_packets", "parse_json", "unpack_packets"]

VERSION = 1
MAX_TEXT = 64 * 1024
MAX_ALSO = 256  # channels an all-call's burst_start may name besides its own
MAX_SUB = 128
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


def burst_start(no: int, meta: BurstMeta) -> str:
    """A live burst starts: its number on this link and its metadata (the session id stays on
    the server)."""
    return dumps(
        {
            "type": "burst_start",
            "burst": no,
            "id": meta.id,
            "channel": meta.channel,
            "speaker_id": meta.speaker_id,
            "speaker_name": meta.speaker_name,
            "start_ms": meta.start_ms,
            **({"kind": meta.kind} if meta.kind != "speech" else {}),
            **({"also": list(meta.also)} if meta.also else {}),
            **({"target_sub": meta.target_sub} if meta.target_sub is not None else {}),
        }
    )


@dataclass(frozen=True, slots=True)
class BurstEnd:
    no: int
    id: str
    complete: bool  # every packet was streamed live
    ended_ms: int | None


def burst_end(no: int, burst_id: str, *, complete: bool, ended_ms: int) -> str:
    return dumps(
        {
            "type": "burst_end",
            "burst": no,
            "id": burst_id,
            "complete": complete,
            "ended_ms": ended_ms,
        }
    )


def _burst_no(msg: dict[str, Any]) -> int:
    no = msg.get("burst")
    if not isinstance(no, int) or isinstance(no, bool) or not 0 <= no <= 0xFFFFFFFF:
        raise LinkError("bad burst number")
    return no


def parse_burst_start(msg: dict[str, Any]) -> tuple[int, BurstMeta]:
    """``(burst number, metadata)`` of a ``burst_start`` message; LinkError when unusable."""
    no = _burst_no(msg)
    try:
        meta = BurstMeta(
            id=str(msg["id"]),
            channel=str(msg["channel"]),
            speaker_id=str(msg["speaker_id"]),
            speaker_name=str(msg["speaker_name"]),
            session_id="",
            start_ms=int(msg["start_ms"]),
            kind=str(msg.get("kind", "speech")),
            also=_also(msg.get("also", [])),
            target_sub=_target(msg.get("target_sub")),
        )
    except (KeyError, ValueError, TypeError):
        raise LinkError("bad burst_start") from None
    if meta.kind not in KINDS:
        raise LinkError("bad burst kind")
    if not NAME_RE.match(meta.channel):
        raise LinkError("bad burst channel")
    if not BURST_ID_RE.match(meta.id):
        raise LinkError("bad burst id")
    return no, meta


def _also(value: Any) -> tuple[str, ...]:
    """The other channels an all-call reached (a row in each): channel names, no repeats."""
    if not isinstance(value, list) or len(value) > MAX_ALSO:
        raise ValueError("also")
    if not all(isinstance(c, str) and NAME_RE.match(c) for c in value) or len(set(value)) < len(
        value
    ):
        raise ValueError("also")
    return tuple(value)


def _target(value: Any) -> str | None:
    """A direct talk's target (a user's sub)."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_SUB:
        raise ValueError("target_sub")
    return value


def parse_burst_end(msg: dict[str, Any]) -> BurstEnd:
    no = _burst_no(msg)
    ended = msg.get("ended_ms")
    return BurstEnd(
        no=no,
        id=str(msg.get("id", "")),
        complete=msg.get("complete") is True,
        ended_ms=ended if isinstance(ended, int) and not isinstance(ended, bool) else None,
    )


__all__ += ["VERSION", "BurstEnd", "burst_end", "burst_start", "dumps"]
__all__ += ["parse_burst_end", "parse_burst_start"]
