"""RFC 4571 framing: RTP, RTCP, STUN and DTLS packets over a TCP byte stream.

RFC 4571 section 2: each packet is preceded by a 16-bit unsigned length in network byte order,
``LENGTH || PACKET``; RFC 6544 (ICE-TCP) uses this framing for every packet of an ICE-TCP
connection. A length of zero carries no packet (allowed by the RFC, meaningless for ICE: it is
skipped). This module is pure: it turns bytes into packets and packets into bytes, no sockets.

A :class:`FrameDecoder` refuses a length above its ``max_frame`` (a peer announcing 64 KiB
packets would make us buffer that much per connection): :class:`~voice_server.media.errors.
PacketError` is raised and the connection is dropped by its owner.
"""

from __future__ import annotations

import struct

from voice_server.media.errors import PacketError

__all__ = ["MAX_FRAME", "FrameDecoder", "frame"]

#: the largest packet accepted from a peer: a WebRTC audio peer sends MTU-sized packets at most
MAX_FRAME = 4096
_LEN = struct.Struct("!H")


def frame(packet: bytes) -> bytes:
    """``packet`` with its RFC 4571 length prefix."""
    if len(packet) > 0xFFFF:
        raise PacketError("packet too long for RFC 4571 framing")
    return _LEN.pack(len(packet)) + packet


class FrameDecoder:
    """Reassembles packets from the chunks a TCP stream delivers, whatever their boundaries.

    Holds at most ``max_frame + 1`` bytes of an incomplete packet between calls (plus the
    chunk being fed).
    """

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held of a packet not yet complete."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The packets completed by ``data``; raise PacketError on a length above the limit
        (the stream cannot be resynchronised: the connection must be dropped)."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            (length,) = _LEN.unpack_from(buf, pos)
            if length > self.max_frame:
                self._buf = bytearray()
                raise PacketError(f"RFC 4571 frame of {length} bytes over the limit")
            if end - pos - 2 < length:
                break
            if length:
                out.append(bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        if pos:
            del buf[:pos]
        return out
