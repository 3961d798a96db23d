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
   24  channel (UTF-8)  source session id (UTF-8)  [audience]  payload (RTP)  tag (16)

A talker whose audience is not simply everyone hearing the channel (a direct talk's listener
filter, an all-call's several channels) sets bit 6 of the kind byte (``ROUTED``) and adds its
*audience* after the source id: the count of its send channels (u8), the count of its filter's
session ids (u8; 255: no filter), then each name as a u8 length and UTF-8. The receiving worker
rebuilds the talker's audience key from it (:func:`voice_server.media.route.audience_key`), so a
direct talk is heard only by its targets and an all-call once, through its first channel each
listener hears, whichever worker they sit on.

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
    "audience_bytes",
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
ROUTED = 0x40  # an audience section follows the source id
NO_FILTER = 255
REASONS = ("malformed", "bad_auth", "unknown_peer", "stale_epoch")


class Kind(IntEnum):
    MEDIA = 1  # a talker's plain packet, to the channel's owner (its one arbiter)
    MIRROR = 2  # a packet the owner forwarded on ``slot``, to a worker with listeners


_KINDS = {k.value: k for k in Kind}


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


@dataclass(slots=True)
class RelayPacket:  # not frozen: made once per relayed packet, a frozen init costs twice as much
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
    #: a routed talker's send channels, first preferred (empty: just ``channel``)
    sends: tuple[str, ...] = ()
    #: a routed talker's listener filter (direct talk; None: no filter)
    only: frozenset[str] | None = None

    @property
    def routed(self) -> bool:
        """Its audience is not everyone hearing the channel (an audience section travels)."""
        return bool(self.sends) or self.only is not None


def _tag(key: bytes, data: bytes | memoryview) -> bytes:
    return hashlib.blake2s(data, key=key, digest_size=TAG_BYTES).digest()


def _names(names: list[str]) -> bytes:
    out = []
    for name in names:
        raw = name.encode()
        if not raw or len(raw) > MAX_NAME:
            raise ValueError("a name of a relay packet's audience is empty or too long")
        out.append(bytes((len(raw),)) + raw)
    return b"".join(out)


def audience_bytes(sends: tuple[str, ...], only: frozenset[str] | None) -> bytes:
    """A routed talker's audience section (see the module docstring)."""
    ids = sorted(only) if only is not None else []
    if len(sends) >= NO_FILTER or len(ids) >= NO_FILTER:
        raise ValueError("too many names in a relay packet's audience")
    count = bytes((len(sends), NO_FILTER if only is None else len(ids)))
    return count + _names(list(sends)) + _names(ids)


def pack(packet: RelayPacket, key: bytes, audience: bytes | None = None) -> bytes:
    """The datagram for ``packet``, authenticated with ``key`` (``audience``: its audience
    section, already built by :func:`audience_bytes`, for a sender that caches it)."""
    channel = packet.channel.encode()
    source = packet.source.encode()
    if len(channel) > MAX_NAME or len(source) > MAX_NAME:
        raise ValueError("channel or source id too long for a relay packet")
    routed = packet.routed
    if routed and audience is None:
        audience = audience_bytes(packet.sends, packet.only)
    head = _HEAD.pack(
        VERSION,
        packet.kind | (HOLD if packet.hold else 0) | (ROUTED if routed else 0),
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
    parts = (head, channel, source, audience if routed else b"", packet.payload)
    body = b"".join(parts)  # type: ignore[arg-type]
    return body + _tag(key, body)


def _read_names(body: memoryview, at: int, n: int) -> tuple[list[str], int]:
    names = []
    for _ in range(n):
        if at >= len(body):
            raise RelayError("malformed", "the audience runs past the packet")
        size = body[at]
        end = at + 1 + size
        if size == 0 or end > len(body):
            raise RelayError("malformed", "the audience runs past the packet")
        names.append(bytes(body[at + 1 : end]).decode())
        at = end
    return names, at


def parse(datagram: bytes, key: bytes) -> RelayPacket:
    """The packet in ``datagram``; raises :class:`RelayError` (``malformed``, ``bad_auth``).
    On the hot path (once per relayed packet): plain slices, no memoryview, no enum call."""
    end = len(datagram) - TAG_BYTES
    if end < HEADER:
        raise RelayError("malformed", "shorter than a relay header")
    body = datagram[:end]
    if not hmac.compare_digest(_tag(key, body), datagram[end:]):
        raise RelayError("bad_auth")
    (version, flags, sender, priority, slot, clen, slen, ext, incarnation, epoch, send_ns) = (
        _HEAD.unpack_from(body)
    )
    if version != VERSION:
        raise RelayError("malformed", f"relay version {version}")
    at = HEADER + clen + slen
    if at > end or clen == 0 or slen == 0:
        raise RelayError("malformed", "names run past the packet")
    kind = _KINDS.get(flags & ~(HOLD | ROUTED))
    if kind is None:
        raise RelayError("malformed", "unknown kind")
    sends: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    try:
        channel = body[HEADER : HEADER + clen].decode()
        source = body[HEADER + clen : at].decode()
        if flags & ROUTED:
            if at + 2 > end:
                raise RelayError("malformed", "the audience runs past the packet")
            n_sends, n_only = body[at], body[at + 1]
            view = memoryview(body)
            names, at = _read_names(view, at + 2, n_sends)
            sends = tuple(names)
            if n_only != NO_FILTER:
                ids, at = _read_names(view, at, n_only)
                only = frozenset(ids)
            if channel not in sends:
                raise RelayError("malformed", "an audience that does not name its channel")
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, RelayError):
            raise
        raise RelayError("malformed", "names not UTF-8") from None
    return RelayPacket(
        sender,
        incarnation,
        epoch,
        channel,
        source,
        body[at:],
        priority,
        slot,
        send_ns,
        ext,
        kind,
        bool(flags & HOLD),
        sends,
        only,
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
