"""Rules for account input [pure]: user names, display names, passwords, roles."""

from __future__ import annotations

import re

from voice_server.identity.tokens import Role

USER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
DISPLAY_MAX = 100
PASSWORD_MIN = 8
PASSWORD_MAX = 256


class AccountError(Exception):
    """An account operation was refused. ``kind``: invalid, not_found, conflict, forbidden."""

    def __init__(self, message: str, kind: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def user_name(name: str) -> str:
    """Sign-in names (also the token ``sub``): lower-case ASCII slugs, 1-64 characters."""
    normalised = name.strip().lower()
    if not USER_NAME_RE.match(normalised):
        raise AccountError(
            "invalid user name: use 1-64 lower-case letters, digits, '_', '-', '.', "
            "starting with a letter or digit"
        )
    return normalised


def display_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > DISPLAY_MAX or any(ord(c) < 32 or c == "\x7f" for c in value):
        raise AccountError(f"display name must be 1-{DISPLAY_MAX} printable characters")
    return value


def password(value: str) -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise AccountError(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    if "\x00" in value:
        raise AccountError("password must not contain NUL characters")
    return value


def role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccountError("role must be staff, supervisor or admin") from None
