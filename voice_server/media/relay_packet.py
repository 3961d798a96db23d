"""The relay packet: one talker's RTP packet between the processes (or nodes) of one deployment
(pure; README "Several processes on one machine").

A relayed packet is the talker's plain RTP (already SRTP-unprotected by the talker's own worker)
behind a small fixed header and a 16-byte keyed BLAKE2s tag over everything before it, with the
deployment's relay key (handed to each worker over its control socket at start). Network byte
order::

    0  version (1)          1  kind (bit 7: hold)  2  sender index      3  priority
    4  slot (0: none)       5  channel length     6  source length
    7  the talker's audio-level extension id (RFC 6464; 0: none)
    8  sender incarnation (u32)                  12  channel owner epoch (u32)
   16  send time, ns (u64, the sender's monotonic clock)
   24  channel (UTF-8)  source session id (UTF-8)  payload (RTP)  tag (16)

The same bytes can travel over a Unix datagram socket or UDP between nodes: nothing in it
depends on the local socket. :class:`RelayGate` is the receiving side's check: parse,
authenticate, a known sender of its current incarnation, an epoch no older than the channel's;
every refusal is counted by reason, never raised to the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HEADER",
    "KEY_BYTES",
    "TAG_BYTES",
    "VERSION",
    "Kind",
    "RelayError",
    "RelayGate",
    "RelayPacket",
    "pack",
    "parse",
    "slot_ssrcs",
]

VERSION = 1
KEY_BYTES = 32  # BLAKE2s' longest key
TAG_BYTES = 16
_HEAD = struct.Struct("!BBBBBBBBIIQ")
HEADER = _HEAD.size  # 24
MAX_NAME = 255  # channel and source id lengths fit one byte each
HOLD = 0x80
REASONS = ("malformed", "bad_auth", "unknown_peer", "stale_epoch")


class Kind(IntEnum):
    MEDIA = 1  # a talker's plain packet, to the channel's owner (its one arbiter)
    MIRROR = 2  # a packet the owner forwarded on ``slot``, to a worker with listeners


def slot_ssrcs(key: bytes, channel: str, n: int) -> tuple[int, ...]:
    """A channel's ``n`` slot SSRCs, the same on every worker that holds ``key`` (so the owner's
    rewritten packets are every worker's slot streams), distinct and never 0."""
    out: list[int] = []
    counter = 0
    while len(out) < n:
        digest = hashlib.blake2s(
            channel.encode() + counter.to_bytes(4, "big"), key=key, digest_size=4, person=b"ssrc"
        ).digest()
        counter += 1
        ssrc = int.from_bytes(digest, "big")
        if ssrc and ssrc not in out:
            out.append(ssrc)
    return tuple(out)


class RelayError(ValueError):
    """A datagram that is not a usable relay packet; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RelayPacket:
    sender: int  # the sending worker's index (0..63)
    incarnation: int  # which start of that worker (the parent raises it at each restart)
    epoch: int  # the channel's owner epoch as the sender knows it
    channel: str
    source: str  # the talker's session id
    payload: bytes  # plain RTP
    priority: int = 0
    slot: int = 0  # the slot the talker holds in the channel (0: none yet, speculative)
    send_ns: int = 0
    level_ext_id: int = 0  # the payload's audio-level extension id
    kind: Kind = Kind.MEDIA
    hold: bool = False  # the talker's route holds a slot whatever its level (an emergency)


def _tag(key: bytes, data: bytes | memoryview) -> bytes:
    return hashlib.blake2s(data, key=key, digest_size=TAG_BYTES).digest()


def pack(packet: RelayPacket, key: bytes) -> bytes:
    """The datagram for ``packet``, authenticated with ``key``."""
    channel = packet.channel.encode()
    source = packet.source.encode()
    if len(channel) > MAX_NAME or len(source) > MAX_NAME:
        raise ValueError("channel or source id too long for a relay packet")
    head = _HEAD.pack(
        VERSION,
        packet.kind | (HOLD if packet.hold else 0),
        packet.sender,
        packet.priority,
        packet.slot,
        len(channel),
        len(source),
        packet.level_ext_id,
        packet.incarnation,
        packet.epoch,
        packet.send_ns,
    )
    body = b"".join((head, channel, source, packet.payload))
    return body + _tag(key, body)


def parse(datagram: bytes, key: bytes) -> RelayPacket:
    """The packet in ``datagram``; raises :class:`RelayError` (``malformed``, ``bad_auth``)."""
    if len(datagram) < HEADER + TAG_BYTES:
        raise RelayError("malformed", "shorter than a relay header")
    body = memoryview(datagram)[:-TAG_BYTES]
    if not hmac.compare_digest(_tag(key, body), datagram[-TAG_BYTES:]):
        raise RelayError("bad_auth")
    (version, kind, sender, priority, slot, clen, slen, ext, incarnation, epoch, send_ns) = (
        _HEAD.unpack_from(datagram)
    )
    if version != VERSION:
        raise RelayError("malformed", f"relay version {version}")
    if HEADER + clen + slen > len(body) or clen == 0 or slen == 0:
        raise RelayError("malformed", "names run past the packet")
    try:
        hold = bool(kind & HOLD)
        kind = Kind(kind & ~HOLD)
        channel = bytes(body[HEADER : HEADER + clen]).decode()
        source = bytes(body[HEADER + clen : HEADER + clen + slen]).decode()
    except (ValueError, UnicodeDecodeError):
        raise RelayError("malformed", "unknown kind or names not UTF-8") from None
    return RelayPacket(
        sender=sender,
        incarnation=incarnation,
        epoch=epoch,
        channel=channel,
        source=source,
        payload=bytes(body[HEADER + clen + slen :]),
        priority=priority,
        slot=slot,
        send_ns=send_ns,
        level_ext_id=ext,
        kind=kind,
        hold=hold,
    )


class RelayGate:
    """The receiving worker's check of every relay datagram.

    ``peers`` maps each current worker's index to its incarnation (the parent's word: a worker
    that was replaced, or one that never was, is an unknown peer); ``epochs`` each channel's
    owner epoch as this worker knows it. Both are read, never copied, so the owner updates them
    in place. Refusals are counted in ``drops`` by reason."""

    __slots__ = ("_key", "accepted", "drops", "epochs", "peers", "self_index")

    def __init__(
        self,
        key: bytes,
        self_index: int,
        peers: Mapping[int, int],
        epochs: Mapping[str, int] | None = None,
    ) -> None:
        if len(key) < 16:
            raise ValueError("a relay key has at least 16 bytes")
        self._key = key
        self.self_index = self_index
        self.peers = peers
        self.epochs: Mapping[str, int] = epochs if epochs is not None else {}
        self.drops = dict.fromkeys(REASONS, 0)
        self.accepted = 0

    def accept(self, datagram: bytes) -> RelayPacket | None:
        """The packet, or None (dropped and counted)."""
        try:
            packet = parse(datagram, self._key)
        except RelayError as exc:
            self.drops[exc.reason] += 1
            return None
        if packet.sender == self.self_index or self.peers.get(packet.sender) != packet.incarnation:
            self.drops["unknown_peer"] += 1
            return None
        if packet.epoch < self.epochs.get(packet.channel, 0):
            self.drops["stale_epoch"] += 1
            return None
        self.accepted += 1
        return packet
