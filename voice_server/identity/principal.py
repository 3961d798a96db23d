"""Who is acting: the token's claims narrowed by the directory's view of the user.

Today there are no accounts, so :class:`TokenDirectory` trusts the signed token. When accounts
exist (the dashboard issue), a database-backed directory returns a :class:`UserRecord` and
:func:`effective_principal` lets the token only *narrow* it: lower role, fewer channels. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from voice_server.identity.tokens import ALL_CHANNELS, Claims, Role


@dataclass(frozen=True, slots=True)
class UserRecord:
    sub: str
    enabled: bool
    role: Role
    channels: tuple[str, ...]  # ALL_CHANNELS for every channel


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    name: str
    role: Role
    channels: frozenset[str]
    all_channels: bool
    expires_at: int

    def may_join(self, channel: str) -> bool:
        return self.all_channels or channel in self.channels


class UserDirectory(Protocol):
    """The source of truth about users, consulted on every join and API call."""

    def lookup(self, sub: str) -> UserRecord | None: ...


class TokenDirectory:
    """No accounts yet: every signed token's subject is a user with exactly its claims."""

    def lookup(self, sub: str) -> UserRecord | None:
        return None


class DirectoryRefusal(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def effective_principal(claims: Claims, record: UserRecord | None) -> Principal:
    """Combine token and directory; a token can only narrow what the directory grants."""
    token_all = ALL_CHANNELS in claims.channels
    token_set = frozenset(c for c in claims.channels if c != ALL_CHANNELS)
    if record is None:
        return Principal(claims.sub, claims.name, claims.role, token_set, token_all, claims.exp)
    if not record.enabled:
        raise DirectoryRefusal("disabled", "user is disabled")
    role = claims.role if claims.role.rank <= record.role.rank else record.role
    rec_all = ALL_CHANNELS in record.channels
    rec_set = frozenset(c for c in record.channels if c != ALL_CHANNELS)
    chans: frozenset[str]
    if token_all and rec_all:
        chans, everything = frozenset(), True
    elif token_all:
        chans, everything = rec_set, False
    elif rec_all:
        chans, everything = token_set, False
    else:
        chans, everything = token_set & rec_set, False
    return Principal(claims.sub, claims.name, role, chans, everything, claims.exp)
