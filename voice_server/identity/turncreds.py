"""Time-limited TURN credentials (the TURN REST API scheme coturn's ``use-auth-secret`` checks).

The server and the TURN relay share a secret. For each participant the server mints
``username = "<expiry>:<sub>"`` (expiry: Unix seconds) and ``credential =
base64(HMAC-SHA1(secret, username))``; the relay recomputes the credential from the username and
refuses it once ``expiry`` has passed. Nothing is stored and nothing needs revoking: a leaked
credential dies with its lifetime. Sent to clients in ``joined.ice_servers`` (never logged).

:func:`check_url` validates a ``turn:``/``turns:`` URL (the ports Chromium allows TURN on: 53,
80, 443 or above 1024). Pure: no I/O, the clock is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

__all__ = ["TurnCredentials", "check_url", "credential_for"]

_URL = re.compile(
    r"^(?P<scheme>turns?):(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})"
    r"(?::(?P<port>[0-9]{1,5}))?(?:\?transport=(?P<transport>udp|tcp))?$"
)
#: the only ports up to 1024 Chromium lets a TURN URL use
CHROMIUM_LOW_PORTS = frozenset({53, 80, 443})
#: characters a ``sub`` keeps in a username (``:`` separates the expiry, so never in it)
_SUB_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def check_url(url: str) -> str:
    """``url`` when it is a TURN URL a browser accepts, else ValueError (one line)."""
    m = _URL.match(url)
    if m is None:
        raise ValueError(f"not a TURN URL (turn:HOST[:PORT][?transport=udp|tcp]): {url!r}")
    default = 5349 if m["scheme"] == "turns" else 3478
    port = int(m["port"]) if m["port"] else default
    if not 1 <= port <= 65535:
        raise ValueError(f"bad port in {url!r}")
    if port <= 1024 and port not in CHROMIUM_LOW_PORTS:
        raise ValueError(f"Chromium allows TURN only on ports 53, 80, 443 or above 1024: {url!r}")
    if m["scheme"] == "turns" and m["transport"] == "udp":
        raise ValueError(f"turns: (TLS) runs over TCP: {url!r}")
    return url


def credential_for(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), the password the relay expects for ``username``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """Mints one ICE server entry per participant. ``urls`` are checked by :func:`check_url`."""

    urls: tuple[str, ...]
    secret: str
    ttl_seconds: int

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("no TURN URL")
        if not self.secret:
            raise ValueError("an empty TURN secret")
        if self.ttl_seconds <= 0:
            raise ValueError("the TURN credential lifetime must be positive")
        for url in self.urls:
            check_url(url)

    def for_user(self, sub: str, now: float) -> dict[str, object]:
        """``{urls, username, credential}`` for ``sub``, valid ``ttl_seconds`` from ``now``."""
        user = _SUB_UNSAFE.sub("_", sub)[:64] or "_"
        username = f"{int(now) + self.ttl_seconds}:{user}"
        return {
            "urls": list(self.urls),
            "username": username,
            "credential": credential_for(self.secret, username),
        }

    def __repr__(self) -> str:  # never the secret
        return f"TurnCredentials(urls={self.urls!r}, ttl_seconds={self.ttl_seconds})"
