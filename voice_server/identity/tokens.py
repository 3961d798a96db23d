"""Tokens: HS256 JWTs signed with the deployment key (the identity contract, docs/security.md).

Claims: ``sub`` stable user id, ``name`` display name, ``role`` (staff|supervisor|admin),
``channels`` (list of channel names, ``*`` for all), ``aud`` (``join`` for voice, ``api`` for
programs), ``exp``, ``iat``, ``jti``. Pure: no I/O.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "voice-server"
MAX_TTL_SECONDS = 31 * 24 * 3600
ALL_CHANNELS = "*"
#: how far in the future a token's ``iat`` may be: a token minted by another node of a cluster
#: whose clock runs ahead (README "Cluster": clocks may differ by up to 5 min) is not refused
#: as "not valid yet"; its expiry keeps the short leeway
IAT_SKEW_SECONDS = 300


class Role(StrEnum):
    STAFF = "staff"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Role.STAFF: 0, Role.SUPERVISOR: 1, Role.ADMIN: 2}


class Audience(StrEnum):
    JOIN = "join"
    API = "api"


class TokenError(Exception):
    """A token was refused. ``reason`` is one of: invalid, expired, audience."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    name: str
    role: Role
    channels: tuple[str, ...]
    aud: Audience
    exp: int
    iat: int
    jti: str

    def allows_channel(self, channel: str) -> bool:
        return ALL_CHANNELS in self.channels or channel in self.channels


def _check_text(label: str, value: str, limit: int) -> str:
    if not value or len(value) > limit or any(ord(c) < 32 for c in value):
        raise ValueError(f"{label} must be 1-{limit} printable characters")
    return value


def issue_token(
    key: bytes,
    *,
    sub: str,
    name: str,
    channels: Iterable[str],
    role: Role = Role.STAFF,
    aud: Audience = Audience.JOIN,
    ttl_seconds: int = 36000,
    now: int,
) -> str:
    """Sign a token. Raises ``ValueError`` on out-of-range input."""
    _check_text("sub", sub, 128)
    _check_text("name", name, 128)
    chans = list(dict.fromkeys(channels))
    if not chans:
        raise ValueError("at least one channel is required")
    for c in chans:
        _check_text("channel", c, 64)
    if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_SECONDS} seconds")
    payload = {
        "iss": ISSUER,
        "sub": sub,
        "name": name,
        "role": Role(role).value,
        "channels": chans,
        "aud": Audience(aud).value,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(payload, key, algorithm=ALGORITHM)


def verify_token(
    key: bytes, token: str, *, audience: Audience, now: int, leeway: int = 5
) -> Claims:
    """Check signature, issuer, expiry and audience; return the claims or raise TokenError."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("invalid", "token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise TokenError("invalid", "token algorithm not accepted")
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={
                "require": ["exp", "iat", "sub", "aud", "jti"],
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
            },
            issuer=ISSUER,
        )
    except jwt.InvalidSignatureError:
        raise TokenError("invalid", "token signature does not verify") from None
    except jwt.PyJWTError:
        raise TokenError("invalid", "token is malformed or incomplete") from None
    claims = _claims_from(payload)
    if claims.exp + leeway < now:
        raise TokenError("expired", "token has expired")
    if claims.iat - max(leeway, IAT_SKEW_SECONDS) > now:
        raise TokenError("invalid", "token is not valid yet")
    if claims.aud != audience:
        raise TokenError("audience", f"token audience must be {audience.value!r}")
    return claims


def _claims_from(payload: dict[str, Any]) -> Claims:
    try:
        sub, name = payload["sub"], payload.get("name", payload["sub"])
        channels = payload.get("channels", [])
        exp, iat, jti = payload["exp"], payload["iat"], payload["jti"]
        if not (isinstance(sub, str) and isinstance(name, str) and isinstance(jti, str)):
            raise TypeError
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise TypeError
        if not (isinstance(exp, int) and isinstance(iat, int)):
            raise TypeError
        return Claims(
            sub=sub,
            name=name,
            role=Role(payload.get("role", "staff")),
            channels=tuple(channels),
            aud=Audience(payload["aud"]),
            exp=exp,
            iat=iat,
            jti=jti,
        )
    except (KeyError, TypeError, ValueError):
        raise TokenError("invalid", "token claims are malformed") from None
