"""STUN messages for an ICE-lite server and for simulated ICE clients.

Wire format: RFC 8489 (obsoletes RFC 5389) section 5 (header, magic cookie), section 14
(attributes: MAPPED/XOR-MAPPED-ADDRESS, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT, ERROR-CODE,
UNKNOWN-ATTRIBUTES, SOFTWARE); ICE attributes from RFC 8445 section 16.1 (PRIORITY,
USE-CANDIDATE, ICE-CONTROLLED, ICE-CONTROLLING); short-term credentials (the HMAC key is the
ICE password, RFC 8445 section 7.2.2).

Receiving a connectivity or consent check (RFC 7675) on the server, per datagram::

    msg = stun.parse(data)                      # PacketError -> drop silently
    if msg.method != stun.BINDING or msg.message_class is not StunClass.REQUEST: drop
    if not msg.verify_fingerprint(): drop       # not a (complete) ICE STUN message
    parts = msg.username_parts                  # ("serverUfrag", "clientUfrag") or None
    if parts is None or msg.message_integrity is None: send build_binding_error(tid, 400)
    peer = peers_by_ufrag.get(parts[0])         # unknown -> build_binding_error(tid, 401)
    if not msg.verify_integrity(peer.pwd_bytes): send build_binding_error(tid, 401)
    send build_binding_success(msg.transaction_id, addr, peer.pwd_bytes)

The whole path (parse, CRC-32, one HMAC-SHA1, build) costs a few microseconds; no object is
kept per message. Passwords are ``bytes``: encode the SDP's ``ice-pwd`` once per peer.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from voice_server.media.errors import PacketError

__all__ = [
    "BINDING",
    "COOKIE",
    "FINGERPRINT_XOR",
    "StunClass",
    "StunMessage",
    "build_binding_error",
    "build_binding_request",
    "build_binding_success",
    "is_stun",
    "new_transaction_id",
    "parse",
]

COOKIE = 0x2112A442
FINGERPRINT_XOR = 0x5354554E
BINDING = 0x001
HEADER_LENGTH = 20

# attribute types
MAPPED_ADDRESS = 0x0001
USERNAME = 0x0006
MESSAGE_INTEGRITY = 0x0008
ERROR_CODE = 0x0009
UNKNOWN_ATTRIBUTES = 0x000A
XOR_MAPPED_ADDRESS = 0x0020
PRIORITY = 0x0024
USE_CANDIDATE = 0x0025
SOFTWARE = 0x8022
FINGERPRINT = 0x8028
ICE_CONTROLLED = 0x8029
ICE_CONTROLLING = 0x802A

_MAX_USERNAME = 513  # RFC 8489 section 14.3
_MAX_ATTRIBUTES = 64

_HEADER = struct.Struct("!HHI12s")
_ATTR = struct.Struct("!HH")
_ATTR_U32 = struct.Struct("!HHI")
_ATTR_U64 = struct.Struct("!HHQ")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_ADDR_HEAD = struct.Struct("!BBH")
_COOKIE_BYTES = _U32.pack(COOKIE)

REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    420: "Unknown Attribute",
    487: "Role Conflict",
    500: "Server Error",
}


class StunClass(IntEnum):
    """The two class bits of the message type (RFC 8489 section 5)."""

    REQUEST = 0
    INDICATION = 1
    SUCCESS = 2
    ERROR = 3


@dataclass(frozen=True, slots=True)
class StunMessage:
    """A parsed STUN message: the attributes ICE uses, decoded; others skipped.

    Attributes after MESSAGE-INTEGRITY (other than FINGERPRINT) are ignored as RFC 8489
    section 14.5 requires; of a repeated attribute the first occurrence counts.
    """

    method: int
    message_class: StunClass
    transaction_id: bytes
    username: str | None = None
    priority: int | None = None
    use_candidate: bool = False
    ice_controlling: int | None = None
    ice_controlled: int | None = None
    xor_mapped_address: tuple[str, int] | None = None
    error_code: tuple[int, str] | None = None
    message_integrity: bytes | None = None
    fingerprint: int | None = None
    #: comprehension-required attribute types (< 0x8000) this parser does not know
    unknown_required: tuple[int, ...] = ()
    raw: bytes = field(default=b"", repr=False)
    integrity_offset: int = field(default=-1, repr=False)
    fingerprint_offset: int = field(default=-1, repr=False)

    @classmethod
    def parse(cls, data: bytes) -> StunMessage:
        """Parse one STUN message; raise :class:`PacketError` if it is malformed."""
        return parse(data)

    @property
    def username_parts(self) -> tuple[str, str] | None:
        """USERNAME ``"receiverUfrag:senderUfrag"`` split at the first colon (RFC 8445 7.2.2).

        On the server, element 0 is the server's own ufrag. None if absent or without colon.
        """
        if self.username is None:
            return None
        local, sep, remote = self.username.partition(":")
        if not sep or not local or not remote:
            return None
        return local, remote

    def verify_fingerprint(self) -> bool:
        """True if a FINGERPRINT attribute is present and matches (CRC-32 xor 0x5354554e)."""
        if self.fingerprint_offset < 0 or self.fingerprint is None:
            return False
        crc = zlib.crc32(memoryview(self.raw)[: self.fingerprint_offset]) ^ FINGERPRINT_XOR
        return crc == self.fingerprint

    def verify_integrity(self, key: bytes) -> bool:
        """True if MESSAGE-INTEGRITY is present and is the HMAC-SHA1 of the message with ``key``.

        The HMAC covers the message up to the attribute, with the header length field set as
        if MESSAGE-INTEGRITY were the last attribute (RFC 8489 section 14.5). Constant time.
        """
        offset = self.integrity_offset
        if offset < 0 or self.message_integrity is None:
            return False
        raw = self.raw
        covered = raw[0:2] + struct.pack("!H", offset - HEADER_LENGTH + 24) + raw[4:offset]
        return hmac.compare_digest(hmac.digest(key, covered, "sha1"), self.message_integrity)


def is_stun(data: bytes) -> bool:
    """Cheap pre-check: first two bits zero, magic cookie present, length consistent."""
    return (
        len(data) >= HEADER_LENGTH
        and data[0] < 4
        and data[4:8] == _COOKIE_BYTES
        and len(data) == HEADER_LENGTH + ((data[2] << 8) | data[3])
    )


def _unpack_xor_address(value: bytes, transaction_id: bytes) -> tuple[str, int]:
    if len(value) < 4:
        raise PacketError("STUN address attribute too short")
    _, family, xport = _ADDR_HEAD.unpack_from(value, 0)
    port = xport ^ (COOKIE >> 16)
    if family == 0x01 and len(value) == 8:
        raw = (_U32.unpack_from(value, 4)[0] ^ COOKIE).to_bytes(4, "big")
        return socket.inet_ntop(socket.AF_INET, raw), port
    if family == 0x02 and len(value) == 20:
        pad = _COOKIE_BYTES + transaction_id
        raw = bytes(a ^ b for a, b in zip(value[4:20], pad, strict=True))
        return socket.inet_ntop(socket.AF_INET6, raw), port
    raise PacketError("STUN address attribute has a bad family or length")


def parse(data: bytes) -> StunMessage:
    """Parse one STUN message; raise :class:`PacketError` if it is malformed.

    FINGERPRINT and MESSAGE-INTEGRITY are decoded but not checked here: call
    :meth:`StunMessage.verify_fingerprint` and :meth:`StunMessage.verify_integrity`.
    """
    data = bytes(data)
    n = len(data)
    if n < HEADER_LENGTH:
        raise PacketError("STUN message shorter than 20 bytes")
    msg_type, length, cookie, tid = _HEADER.unpack_from(data, 0)
    if msg_type & 0xC000:
        raise PacketError("STUN message type has the top bits set")
    if cookie != COOKIE:
        raise PacketError("STUN magic cookie missing")
    if length & 3 or n != HEADER_LENGTH + length:
        raise PacketError("STUN message length does not match the datagram")
    method = (msg_type & 0x000F) | ((msg_type & 0x00E0) >> 1) | ((msg_type & 0x3E00) >> 2)
    klass = StunClass(((msg_type & 0x0010) >> 4) | ((msg_type & 0x0100) >> 7))

    username: str | None = None
    priority: int | None = None
    use_candidate = False
    controlling: int | None = None
    controlled: int | None = None
    mapped: tuple[str, int] | None = None
    error: tuple[int, str] | None = None
    integrity: bytes | None = None
    fingerprint: int | None = None
    unknown: list[int] = []
    seen: set[int] = set()
    mi_offset = -1
    fp_offset = -1

    pos = HEADER_LENGTH
    count = 0
    while pos < n:
        if fp_offset >= 0:
            raise PacketError("STUN attribute after FINGERPRINT")
        count += 1
        if count > _MAX_ATTRIBUTES:
            raise PacketError("too many STUN attributes")
        if pos + 4 > n:
            raise PacketError("truncated STUN attribute header")
        atype, alen = _ATTR.unpack_from(data, pos)
        start = pos + 4
        end = start + alen
        if end > n:
            raise PacketError("STUN attribute overruns the message")
        value = data[start:end]
        offset = pos
        pos = end + (-alen & 3)
        if atype == FINGERPRINT:
            if alen != 4:
                raise PacketError("bad FINGERPRINT length")
            fingerprint = _U32.unpack(value)[0]
            fp_offset = offset
            continue
        if mi_offset >= 0 or atype in seen:
            continue  # after MESSAGE-INTEGRITY: not authenticated; repeated: first counts
        seen.add(atype)
        if atype == MESSAGE_INTEGRITY:
            if alen != 20:
                raise PacketError("bad MESSAGE-INTEGRITY length")
            integrity = value
            mi_offset = offset
        elif atype == USERNAME:
            if alen > _MAX_USERNAME:
                raise PacketError("USERNAME too long")
            try:
                username = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PacketError("USERNAME is not UTF-8") from exc
        elif atype == PRIORITY:
            if alen != 4:
                raise PacketError("bad PRIORITY length")
            priority = _U32.unpack(value)[0]
        elif atype == USE_CANDIDATE:
            if alen != 0:
                raise PacketError("bad USE-CANDIDATE length")
            use_candidate = True
        elif atype == ICE_CONTROLLING:
            if alen != 8:
                raise PacketError("bad ICE-CONTROLLING length")
            controlling = _U64.unpack(value)[0]
        elif atype == ICE_CONTROLLED:
            if alen != 8:
                raise PacketError("bad ICE-CONTROLLED length")
            controlled = _U64.unpack(value)[0]
        elif atype == XOR_MAPPED_ADDRESS:
            mapped = _unpack_xor_address(value, tid)
        elif atype == ERROR_CODE:
            if alen < 4:
                raise PacketError("ERROR-CODE too short")
            code = (value[2] & 0x07) * 100 + value[3]
            error = (code, value[4:].decode("utf-8", errors="replace"))
        elif atype < 0x8000 and atype not in (MAPPED_ADDRESS, UNKNOWN_ATTRIBUTES):
            unknown.append(atype)

    return StunMessage(
        method=method,
        message_class=klass,
        transaction_id=tid,
        username=username,
        priority=priority,
        use_candidate=use_candidate,
        ice_controlling=controlling,
        ice_controlled=controlled,
        xor_mapped_address=mapped,
        error_code=error,
        message_integrity=integrity,
        fingerprint=fingerprint,
        unknown_required=tuple(unknown),
        raw=data,
        integrity_offset=mi_offset,
        fingerprint_offset=fp_offset,
    )


# ---------------------------------------------------------------------------------------------
# building


def new_transaction_id() -> bytes:
    """A random 96-bit transaction id (RFC 8489 section 5)."""
    return secrets.token_bytes(12)


def _message_type(method: int, klass: StunClass) -> int:
    c = int(klass)
    return (
        (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
    )


def _attr(atype: int, value: bytes) -> bytes:
    return _ATTR.pack(atype, len(value)) + value + bytes(-len(value) & 3)


def _xor_address(address: tuple[str, int], transaction_id: bytes) -> bytes:
    host, port = address
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"bad port {port}")
    if ":" in host:
        raw6 = socket.inet_pton(socket.AF_INET6, host)
        if raw6[:12] == b"\x00" * 10 + b"\xff\xff":  # IPv4-mapped: report the IPv4 address
            raw4 = raw6[12:]
        else:
            pad = _COOKIE_BYTES + transaction_id
            xored = bytes(a ^ b for a, b in zip(raw6, pad, strict=True))
            return _ADDR_HEAD.pack(0, 0x02, port ^ (COOKIE >> 16)) + xored
    else:
        raw4 = socket.inet_pton(socket.AF_INET, host)
    return _ADDR_HEAD.pack(0, 0x01, port ^ (COOKIE >> 16)) + _U32.pack(
        _U32.unpack(raw4)[0] ^ COOKIE
    )


def _finish(msg_type: int, tid: bytes, body: bytes, key: bytes | None) -> bytes:
    """Append MESSAGE-INTEGRITY (if ``key``) and FINGERPRINT, return the whole message."""
    if len(tid) != 12:
        raise ValueError("transaction id must be 12 bytes")
    if key is not None:
        head = _HEADER.pack(msg_type, len(body) + 24, COOKIE, tid)
        mac = hmac.digest(key, head + body, "sha1")
        body += _ATTR.pack(MESSAGE_INTEGRITY, 20) + mac
    head = _HEADER.pack(msg_type, len(body) + 8, COOKIE, tid)
    crc = zlib.crc32(body, zlib.crc32(head)) ^ FINGERPRINT_XOR
    return head + body + _ATTR_U32.pack(FINGERPRINT, 4, crc)


_SUCCESS_TYPE = _message_type(BINDING, StunClass.SUCCESS)
_ERROR_TYPE = _message_type(BINDING, StunClass.ERROR)
_REQUEST_TYPE = _message_type(BINDING, StunClass.REQUEST)


def build_binding_success(
    transaction_id: bytes, address: tuple[str, int], password: bytes
) -> bytes:
    """Binding success response: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT.

    ``address`` is the request's source (IPv4 or IPv6; an IPv4-mapped IPv6 address is reported
    as IPv4); ``password`` is the server's own ICE password for this peer.
    """
    body = _attr(XOR_MAPPED_ADDRESS, _xor_address(address, transaction_id))
    return _finish(_SUCCESS_TYPE, transaction_id, body, password)


def build_binding_error(
    transaction_id: bytes,
    code: int,
    reason: str | None = None,
    *,
    password: bytes | None = None,
    unknown_attributes: Sequence[int] = (),
) -> bytes:
    """Binding error response with ERROR-CODE (and UNKNOWN-ATTRIBUTES for 420), FINGERPRINT.

    400 Bad Request and 401 Unauthorized go without MESSAGE-INTEGRITY (the requester could not
    be authenticated); 487 Role Conflict (RFC 8445 section 7.3.1.1) passes ``password``.
    """
    if not 300 <= code <= 699:
        raise ValueError(f"STUN error code out of range: {code}")
    text = (reason if reason is not None else REASONS.get(code, "Error")).encode("utf-8")[:763]
    body = _attr(ERROR_CODE, struct.pack("!HBB", 0, code // 100, code % 100) + text)
    if unknown_attributes:
        body += _attr(
            UNKNOWN_ATTRIBUTES, struct.pack(f"!{len(unknown_attributes)}H", *unknown_attributes)
        )
    return _finish(_ERROR_TYPE, transaction_id, body, password)


def build_binding_request(
    *,
    username: str,
    password: bytes,
    priority: int,
    tie_breaker: int,
    controlling: bool = True,
    use_candidate: bool = False,
    transaction_id: bytes | None = None,
) -> bytes:
    """Client-side connectivity check (RFC 8445 section 7.2.2).

    ``username`` is ``"serverUfrag:clientUfrag"``, ``password`` the server's ICE password;
    carries USERNAME, PRIORITY, ICE-CONTROLLING (or ICE-CONTROLLED), USE-CANDIDATE if asked,
    MESSAGE-INTEGRITY and FINGERPRINT. A fresh transaction id is drawn when none is given.
    """
    tid = transaction_id if transaction_id is not None else new_transaction_id()
    body = _attr(USERNAME, username.encode("utf-8")) + _ATTR_U32.pack(PRIORITY, 4, priority)
    body += _ATTR_U64.pack(ICE_CONTROLLING if controlling else ICE_CONTROLLED, 8, tie_breaker)
    if use_candidate:
        body += _ATTR.pack(USE_CANDIDATE, 0)
    return _finish(_REQUEST_TYPE, tid, body, password)
