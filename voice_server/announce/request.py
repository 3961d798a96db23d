"""An announcement request, checked before anything is synthesised or stored (pure).

``{"text", "channels", "urgent", "repeat", "language"}``: text 1..500 characters after trimming
(control characters refused), channels a list of channel names (none: every channel the author
supervises), ``urgent`` a boolean (level 2: cuts in; else level 1: waits for a free slot),
``repeat`` 1..3 plays, ``language`` ``ja`` (Open JTalk) or ``en`` (espeak-ng, when installed).
Each refusal is an :class:`AnnounceError` with a stable code and its HTTP status.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LANGUAGES",
    "MAX_CHANNELS",
    "MAX_REPEAT",
    "MAX_TEXT",
    "AnnounceError",
    "AnnounceRequest",
    "parse",
    "targets",
]

MAX_TEXT = 500
MAX_REPEAT = 3
MAX_CHANNELS = 64
LANGUAGES = ("ja", "en")
_FIELDS = frozenset({"text", "channels", "urgent", "repeat", "language"})


class AnnounceError(Exception):
    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def detail(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    text: str
    channels: tuple[str, ...] | None  # None: every channel the author supervises
    urgent: bool = False
    repeat: int = 1
    language: str = "ja"


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise AnnounceError("bad_text", "text must be a string")
    text = " ".join(raw.split())  # newlines and runs of spaces read as one pause
    if not text:
        raise AnnounceError("empty_text", "the announcement has no text")
    if len(text) > MAX_TEXT:
        raise AnnounceError("text_too_long", f"at most {MAX_TEXT} characters ({len(text)} given)")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co") for c in text):
        raise AnnounceError("bad_text", "the text holds control characters")
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        raise AnnounceError("unspeakable_text", "the text has nothing to read aloud")
    return text


def parse(body: Any) -> AnnounceRequest:
    """The request from a JSON body (AnnounceError on anything malformed)."""
    if not isinstance(body, Mapping):
        raise AnnounceError("bad_request", "the body must be a JSON object", 400)
    unknown = set(body) - _FIELDS
    if unknown:
        raise AnnounceError("bad_request", f"unknown field(s): {', '.join(sorted(unknown))}", 400)
    text = _text(body.get("text"))
    channels: tuple[str, ...] | None = None
    raw = body.get("channels")
    if raw is not None:
        if not isinstance(raw, list) or not all(isinstance(c, str) and c for c in raw):
            raise AnnounceError("bad_channels", "channels must be a list of channel names")
        if not raw:
            raise AnnounceError("empty_target", "no channel to announce to")
        if len(raw) > MAX_CHANNELS:
            raise AnnounceError("bad_channels", f"at most {MAX_CHANNELS} channels")
        channels = tuple(dict.fromkeys(raw))
    urgent = body.get("urgent", False)
    if not isinstance(urgent, bool):
        raise AnnounceError("bad_request", "urgent must be true or false", 400)
    repeat = body.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or not 1 <= repeat <= MAX_REPEAT:
        raise AnnounceError("bad_repeat", f"repeat must be 1..{MAX_REPEAT}")
    language = body.get("language", "ja")
    if language not in LANGUAGES:
        raise AnnounceError("language_unavailable", f"language must be one of {LANGUAGES}")
    return AnnounceRequest(text, channels, urgent, repeat, language)


def targets(
    request: AnnounceRequest, supervised: Container[str], known: Collection[str]
) -> tuple[str, ...]:
    """The channels it goes to: those asked for (each known and supervised by the author), or
    every known channel the author supervises."""
    if request.channels is None:
        out = tuple(c for c in sorted(known) if c in supervised)
        if not out:
            raise AnnounceError("empty_target", "you supervise no channel", 403)
        return out
    for c in request.channels:
        if c not in known:
            raise AnnounceError("no_such_channel", f"no channel {c!r}", 404)
    refused = [c for c in request.channels if c not in supervised]
    if refused:
        raise AnnounceError(
            "channel_not_supervised", f"you do not supervise: {', '.join(refused)}", 403
        )
    return request.channels
