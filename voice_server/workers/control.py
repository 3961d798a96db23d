"""Messages on the control socket between the parent and one media worker (pure).

One message per ``SOCK_SEQPACKET`` record. Tap packets (the hot ones: one per talker packet) are
binary: ``b"P"``, the burst handle (u32), the plain RTP; or several in one record (a worker
batches them, so that the parent is not woken once per packet): ``b"Q"``, then per packet its
handle (u32), its length (u16) and the plain RTP (``tap_packets``). Everything else is ``b"J"``
and a JSON object with an ``op``; bytes travel as base64 text in fields named ``*_b64``. Routes
travel as :func:`route_dict`.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from voice_server.media.route import Route

__all__ = [
    "b64",
    "decode",
    "encode",
    "route_dict",
    "route_of",
    "tap_packet",
    "tap_packets",
    "unb64",
]

_HANDLE = struct.Struct("!I")
_ITEM = struct.Struct("!IH")
TAP_PACKET = "tap_packet"
TAP_PACKETS = "tap_packets"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def encode(op: str, **fields: Any) -> bytes:
    return b"J" + json.dumps({"op": op, **fields}, separators=(",", ":")).encode()


def tap_packet(handle: int, plain: bytes) -> bytes:
    return b"P" + _HANDLE.pack(handle) + plain


def tap_packets(items: list[tuple[int, bytes]]) -> bytes:
    """Several tap packets (burst handle, plain RTP of at most 65535 bytes) in one record."""
    parts = [b"Q"]
    for handle, plain in items:
        parts.append(_ITEM.pack(handle, len(plain)))
        parts.append(plain)
    return b"".join(parts)


def _tap_items(record: bytes) -> list[tuple[int, bytes]]:
    items = []
    at, end = 1, len(record)
    while at < end:
        if at + _ITEM.size > end:
            raise ValueError("a tap batch runs past its record")
        handle, size = _ITEM.unpack_from(record, at)
        at += _ITEM.size
        if at + size > end:
            raise ValueError("a tap batch runs past its record")
        items.append((handle, record[at : at + size]))
        at += size
    return items


def decode(record: bytes) -> dict[str, Any]:
    """The message in one record; raises ValueError when it is none."""
    if record[:1] == b"P" and len(record) >= 1 + _HANDLE.size:
        return {"op": TAP_PACKET, "h": _HANDLE.unpack_from(record, 1)[0], "plain": record[5:]}
    if record[:1] == b"Q":
        return {"op": TAP_PACKETS, "items": _tap_items(record)}
    if record[:1] == b"J":
        msg = json.loads(record[1:])
        if isinstance(msg, dict) and isinstance(msg.get("op"), str):
            return msg
    raise ValueError("not a control message")


def route_dict(route: Route) -> dict[str, Any]:
    return {
        "sends": list(route.sends),
        "hears": list(route.hears),
        "only": sorted(route.only) if route.only is not None else None,
        "priority": route.priority,
        "hold": route.hold,
    }


def route_of(d: dict[str, Any]) -> Route:
    only = d.get("only")
    return Route(
        tuple(d["sends"]),
        tuple(d["hears"]),
        frozenset(only) if only is not None else None,
        int(d.get("priority", 0)),
        bool(d.get("hold", False)),
    )
