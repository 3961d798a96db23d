"""Standard Webhooks signatures [pure]: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, the key being the
base64 part of the endpoint's ``whsec_`` secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["PREFIX", "headers", "new_secret", "sign", "verify"]

PREFIX = "whsec_"
TOLERANCE_S = 300


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(PREFIX) :])


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(secret: str, got: dict[str, str], body: bytes, now: int) -> bool:
    """What a receiver does (README snippet): the timestamp within 5 minutes and one of the
    space-separated signatures matching."""
    try:
        msg_id, stamp = got["webhook-id"], int(got["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs(now - stamp) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, stamp, body)
    return any(hmac.compare_digest(expected, s) for s in got.get("webhook-signature", "").split())
