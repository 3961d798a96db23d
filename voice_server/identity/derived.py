"""Keys derived from the deployment key for one purpose each (pure).

``derive_key(key, "transcription-link")`` authenticates the transcriber sidecar,
``derive_key(key, "clip-url")`` signs short-lived clip URLs. HMAC-SHA256 with a purpose label:
a leaked derived key does not forge tokens or serve another purpose (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["CLIP_PURPOSE", "LINK_PURPOSE", "derive_key", "mac_hex"]

LINK_PURPOSE = "transcription-link"
CLIP_PURPOSE = "clip-url"


def derive_key(key: bytes, purpose: str) -> bytes:
    return hmac.new(
        key, b"voice-server derived key v1:" + purpose.encode(), hashlib.sha256
    ).digest()


def mac_hex(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()
