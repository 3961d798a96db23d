"""Who is acting: the token's claims narrowed by the directory's view of the user.

:class:`TokenDirectory` trusts the signed token (no accounts). With accounts, the database-backed
directory (``voice_server.accounts.directory``) returns a :class:`UserRecord` and
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
    channels: tuple[str, ...]  # channels the user may join; ALL_CHANNELS for every channel
    display_name: str | None = None  # when set, shown instead of the token's name
    supervised: tuple[str, ...] = ()  # channels whose call log and live view the user may use


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
    """The source of truth about users, consulted on every join, refresh and API call.

    ``lookup`` returns None when the token alone is the principal (no accounts), or raises
    :class:`DirectoryRefusal` (reason ``unknown``) for a subject without an account when
    accounts exist. ``revision`` changes whenever any user record may have changed (cheap:
    polled once a second to re-check live sessions)."""

    def lookup(self, sub: str) -> UserRecord | None: ...

    def revision(self) -> int: ...


class TokenDirectory:
    """No accounts: every signed token's subject is a user with exactly its claims."""

    def lookup(self, sub: str) -> UserRecord | None:
        return None

    def revision(self) -> int:
        return 0


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
    name = record.display_name or claims.name
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
    return Principal(claims.sub, name, role, chans, everything, claims.exp)


def still_allowed(channel: str, record: UserRecord | None) -> str | None:
    """Re-check a live session against a changed directory: None, or why it must end
    (``disabled`` or ``channel``)."""
    if record is None:
        return None
    if not record.enabled:
        return "disabled"
    if ALL_CHANNELS in record.channels or channel in record.channels:
        return None
    return "channel"


def lookup_all(directory: UserDirectory, subs: set[str]) -> dict[str, UserRecord | str | None]:
    """Each subject's record, None (token-only), or the refusal reason (``unknown``)."""
    verdicts: dict[str, UserRecord | str | None] = {}
    for sub in subs:
        try:
            verdicts[sub] = directory.lookup(sub)
        except DirectoryRefusal as exc:
            verdicts[sub] = exc.reason
    return verdicts
