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

**The sealed format** (between nodes with ``cluster_relay_encrypt``; README "Cluster"): version
byte 2, the same header, names and audience (readable, so a receiver finds the sender before any
cryptography), then a 12-byte nonce and the RTP payload encrypted with ChaCha20-Poly1305 (its
16-byte tag last), the header, names and audience its associated data::

    header  channel  source  [audience]   nonce (12)   ciphertext (RTP)  tag (16)

Each sender's start has its own key, ``BLAKE2s(master, sender index ‖ incarnation)``, and its
nonce is a random 4-byte prefix (drawn at that start) and a 64-bit counter: a (key, nonce) pair
repeats only if one index restarts with the same random 32-bit incarnation *and* the same random
prefix (2^-64 for two starts) and never within one start (the counter). The receiver keeps a
window of the last ``REPLAY_WINDOW`` counters per sender: a replayed datagram is refused. A
receiver of one format refuses the other (``wrong_format``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = [
    "HEADER",
    "KEY_BYTES",
    "NONCE_BYTES",
    "REPLAY_WINDOW",
    "SEALED",
    "TAG_BYTES",
    "VERSION",
    "Kind",
    "Opener",
    "RelayError",
    "RelayGate",
    "RelayPacket",
    "Sealer",
    "audience_bytes",
    "pack",
    "parse",
    "slot_ssrcs",
]

VERSION = 1  # the plain format (a BLAKE2s tag)
SEALED = 2  # the sealed format (ChaCha20-Poly1305)
KEY_BYTES = 32  # BLAKE2s' longest key
TAG_BYTES = 16
_HEAD = struct.Struct("!BBBBBBBBIIQ")
HEADER = _HEAD.size  # 24
MAX_NAME = 255  # channel and source id lengths fit one byte each
HOLD = 0x80
ROUTED = 0x40  # an audience section follows the source id
NO_FILTER = 255
NONCE_BYTES = 12
REPLAY_WINDOW = 256  # counters behind the newest a sealed datagram may still arrive
_COUNTER_END = 1 << 64
REASONS = ("malformed", "bad_auth", "unknown_peer", "stale_epoch", "wrong_format", "replayed")


class Kind(IntEnum):
    MEDIA = 1  # a talker's plain packet, to the channel's owner (its one arbiter)
    MIRROR = 2  # a packet the owner forwarded on ``slot``, to a worker with listeners
    PING = 3  # a node's keepalive to the other nodes (``slot``: 1 its Redis link is up, 0 down)


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


def _front(packet: RelayPacket, audience: bytes | None, version: int) -> bytes:
    """The header, names and audience of ``packet`` (everything before its payload)."""
    channel = packet.channel.encode()
    source = packet.source.encode()
    if len(channel) > MAX_NAME or len(source) > MAX_NAME:
        raise ValueError("channel or source id too long for a relay packet")
    routed = packet.routed
    if routed and audience is None:
        audience = audience_bytes(packet.sends, packet.only)
    head = _HEAD.pack(
        version,
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
    return b"".join((head, channel, source, audience if routed else b""))  # type: ignore[arg-type]


def pack(packet: RelayPacket, key: bytes, audience: bytes | None = None) -> bytes:
    """The datagram for ``packet``, authenticated with ``key`` (``audience``: its audience
    section, already built by :func:`audience_bytes`, for a sender that caches it)."""
    body = _front(packet, audience, VERSION) + packet.payload
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


def _decode(body: bytes, end: int) -> tuple[RelayPacket, int]:
    """The header, names and audience of ``body``, which must end by ``end``: the packet (its
    payload still empty) and where its payload (or nonce) starts."""
    (_, flags, sender, priority, slot, clen, slen, ext, incarnation, epoch, send_ns) = (
        _HEAD.unpack_from(body)
    )
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
            view = memoryview(body)[:end]
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
    packet = RelayPacket(
        sender,
        incarnation,
        epoch,
        channel,
        source,
        b"",
        priority,
        slot,
        send_ns,
        ext,
        kind,
        bool(flags & HOLD),
        sends,
        only,
    )
    return packet, at


def parse(datagram: bytes, key: bytes) -> RelayPacket:
    """The packet in a plain ``datagram``; raises :class:`RelayError` (``malformed``,
    ``bad_auth``, ``wrong_format``). On the hot path (once per relayed packet)."""
    end = len(datagram) - TAG_BYTES
    if end < HEADER:
        raise RelayError("malformed", "shorter than a relay header")
    if datagram[0] == SEALED:  # only the reason: a forged byte gets it refused all the same
        raise RelayError("wrong_format", "a sealed datagram to a plain receiver")
    body = datagram[:end]
    if not hmac.compare_digest(_tag(key, body), datagram[end:]):
        raise RelayError("bad_auth")
    if body[0] != VERSION:
        raise RelayError("malformed", f"relay version {body[0]}")
    packet, at = _decode(body, end)
    packet.payload = body[at:]
    return packet


def sender_key(master: bytes, sender: int, incarnation: int) -> bytes:
    """The sealed format's key of one sender's one start (32 bytes for ChaCha20-Poly1305)."""
    data = bytes((sender,)) + incarnation.to_bytes(4, "big")
    return hashlib.blake2s(data, key=master, person=b"relayaed").digest()


class Sealer:
    """The sending side of the sealed format: one sender's one start (its own key, a random
    nonce prefix and a counter that never goes back)."""

    __slots__ = ("_aead", "_prefix", "counter", "incarnation", "sender")

    def __init__(
        self, master: bytes, sender: int, incarnation: int, prefix: bytes | None = None
    ) -> None:
        if len(master) < 16:
            raise ValueError("a relay key has at least 16 bytes")
        self.sender = sender
        self.incarnation = incarnation
        self._aead = ChaCha20Poly1305(sender_key(master, sender, incarnation))
        self._prefix = secrets.token_bytes(4) if prefix is None else prefix
        if len(self._prefix) != 4:
            raise ValueError("a nonce prefix has 4 bytes")
        self.counter = 0

    def seal(self, packet: RelayPacket, audience: bytes | None = None) -> bytes:
        """The sealed datagram for ``packet`` (this sender's, this start's)."""
        if packet.sender != self.sender or packet.incarnation != self.incarnation:
            raise ValueError("a sealer seals its own sender's packets only")
        n = self.counter
        if n >= _COUNTER_END:  # 2^64 packets: never, but a nonce must not wrap
            raise OverflowError("the relay's nonce counter is spent")
        self.counter = n + 1
        front = _front(packet, audience, SEALED)
        nonce = self._prefix + n.to_bytes(8, "big")
        return front + nonce + self._aead.encrypt(nonce, packet.payload, front)


class _Peer:
    """What a receiver keeps of one sender's current start: its key and replay window."""

    __slots__ = ("aead", "bits", "incarnation", "top")

    def __init__(self, aead: ChaCha20Poly1305, incarnation: int) -> None:
        self.aead = aead
        self.incarnation = incarnation
        self.top = -1  # the highest counter accepted
        self.bits = 0  # bit i: counter top - i accepted


class Opener:
    """The receiving side of the sealed format: a known sender of its current incarnation (read
    before any cryptography), the AEAD's check, then a counter not seen yet."""

    __slots__ = ("_master", "_peers")

    def __init__(self, master: bytes) -> None:
        if len(master) < 16:
            raise ValueError("a relay key has at least 16 bytes")
        self._master = master
        self._peers: dict[int, _Peer] = {}

    def open(self, datagram: bytes, peers: Mapping[int, int], self_index: int) -> RelayPacket:
        """The packet; raises :class:`RelayError` (``malformed``, ``wrong_format``,
        ``unknown_peer``, ``replayed``, ``bad_auth``)."""
        end = len(datagram) - NONCE_BYTES - TAG_BYTES
        if end < HEADER:
            raise RelayError("malformed", "shorter than a sealed relay header")
        if datagram[0] != SEALED:
            if datagram[0] == VERSION:
                raise RelayError("wrong_format", "a plain datagram to a sealing receiver")
            raise RelayError("malformed", f"relay version {datagram[0]}")
        sender = datagram[2]
        incarnation = int.from_bytes(datagram[8:12], "big")
        if sender == self_index or peers.get(sender) != incarnation:
            raise RelayError("unknown_peer")
        state = self._peers.get(sender)
        if state is None or state.incarnation != incarnation:
            aead = ChaCha20Poly1305(sender_key(self._master, sender, incarnation))
            state = self._peers[sender] = _Peer(aead, incarnation)
        packet, at = _decode(datagram, end)
        sealed = at + NONCE_BYTES
        try:  # authenticated first: a forged datagram is bad_auth whatever counter it claims
            packet.payload = state.aead.decrypt(
                datagram[at:sealed], datagram[sealed:], datagram[:at]
            )
        except InvalidTag:
            raise RelayError("bad_auth") from None
        behind = state.top - int.from_bytes(datagram[at + 4 : sealed], "big")
        if behind >= 0 and (behind >= REPLAY_WINDOW or (state.bits >> behind) & 1):
            raise RelayError("replayed")
        if behind < 0:  # the newest yet: the window slides (a far jump: never a huge shift)
            ahead = -behind
            state.bits = ((state.bits << ahead) | 1) & _WINDOW_MASK if ahead < REPLAY_WINDOW else 1
            state.top += ahead
        else:
            state.bits |= 1 << behind
        return packet


_WINDOW_MASK = (1 << REPLAY_WINDOW) - 1


class RelayGate:
    """The receiving worker's check of every relay datagram.

    ``peers`` maps each current worker's index to its incarnation (the parent's word: a worker
    that was replaced, or one that never was, is an unknown peer); ``epochs`` each channel's
    owner epoch as this worker knows it. Both are read, never copied, so the owner updates them
    in place. Refusals are counted in ``drops`` by reason. With ``seal_key`` it takes the sealed
    format only (between nodes with ``cluster_relay_encrypt``), else the plain one only."""

    __slots__ = ("_key", "_opener", "accepted", "drops", "epochs", "peers", "self_index")

    def __init__(
        self,
        key: bytes,
        self_index: int,
        peers: Mapping[int, int],
        epochs: Mapping[str, int] | None = None,
        seal_key: bytes | None = None,
    ) -> None:
        if len(key) < 16:
            raise ValueError("a relay key has at least 16 bytes")
        self._key = key
        self._opener = Opener(seal_key) if seal_key is not None else None
        self.self_index = self_index
        self.peers = peers
        self.epochs: Mapping[str, int] = epochs if epochs is not None else {}
        self.drops = dict.fromkeys(REASONS, 0)
        self.accepted = 0

    def accept(self, datagram: bytes) -> RelayPacket | None:
        """The packet, or None (dropped and counted)."""
        try:
            opener = self._opener
            if opener is None:
                packet = parse(datagram, self._key)
            else:
                packet = opener.open(datagram, self.peers, self.self_index)
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
