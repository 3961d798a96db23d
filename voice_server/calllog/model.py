"""Call-log values: utterances, words, gaps, search queries and pages, cursors (pure).

Times are integers in milliseconds since the epoch (UTC) inside the program and the database, and
ISO 8601 strings with a time zone at the API (:func:`iso`). An utterance's ``id`` is its talk
burst's id (:func:`new_burst_id`): 13 digits of the burst's start in ms, then 6 hex digits. Its
database rowid is derived from it (:func:`rowid_of`) so that rowid order is time order: the
search index and time filters then work on rowid ranges, never on a sort of all hits.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

__all__ = [
    "BURST_ID_RE",
    "KINDS",
    "MAX_UID",
    "UID_RE",
    "Gap",
    "SearchPage",
    "SearchQuery",
    "Utterance",
    "Word",
    "decode_cursor",
    "encode_cursor",
    "iso",
    "new_burst_id",
    "parse_time",
    "rowid_of",
]

BURST_ID_RE = re.compile(r"^[0-9]{13}[0-9a-f]{6}$")
#: a call-log row's uid: its burst id, or ``<burst_id>:<channel>`` for a row of a broadcast
#: reaching several channels (announcements, all-calls)
UID_RE = re.compile(r"^[0-9]{13}[0-9a-f]{6}(:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$")
MAX_UID = 19 + 1 + 64
KINDS = ("speech", "all_call", "direct", "announcement", "emergency")
ROWID_SHIFT = 10  # 1024 rowids per millisecond
MAX_LIMIT = 200


def new_burst_id(start_ms: int) -> str:
    return f"{start_ms:013d}{secrets.token_hex(3)}"


def rowid_of(burst_id: str) -> int:
    """The preferred rowid of a burst: its start ms, shifted, plus 10 bits of its random part
    (a ``<burst_id>:<channel>`` uid: of its burst id)."""
    return (int(burst_id[:13]) << ROWID_SHIFT) | (int(burst_id[13:19], 16) & 0x3FF)


def ms_to_rowid(ms: int) -> int:
    return ms << ROWID_SHIFT


def iso(ms: int, tz: tzinfo | None = None) -> str:
    """ISO 8601 with milliseconds and the offset of ``tz`` (default: this machine's zone)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    dt = dt.astimezone(tz) if tz is not None else dt.astimezone()
    return dt.isoformat(timespec="milliseconds")


def parse_time(text: str) -> int:
    """ISO 8601 (a time zone is required) or epoch seconds → ms. Raises ValueError."""
    text = text.strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return round(float(text) * 1000)
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("a time needs a time zone (e.g. +09:00 or Z)")
    return round(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    start: float  # seconds from the utterance start
    end: float
    conf: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.conf, 4),
        }


@dataclass(frozen=True, slots=True)
class Utterance:
    id: str
    channel: str
    speaker_id: str
    speaker_name: str
    start_ms: int
    end_ms: int
    text: str
    words: tuple[Word, ...] = ()
    model: str = ""
    language: str = ""
    clip: str | None = None  # path of the Ogg/Opus clip, relative to the data directory
    kind: str = "speech"  # one of KINDS
    broadcast_id: str | None = None  # rows of one broadcast (one per reached channel) share it
    target_sub: str | None = None  # a direct talk's: the person talked to

    def as_api(self, clip_url: str | None, tz: tzinfo | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "speaker_id": self.speaker_id,
            "speaker_name": self.speaker_name,
            "start": iso(self.start_ms, tz),
            "end": iso(self.end_ms, tz),
            "text": self.text,
            "words": [w.as_dict() for w in self.words],
            "model": self.model,
            "language": self.language,
            "clip_url": clip_url,
            "kind": self.kind,
            "target_sub": self.target_sub,  # a direct talk's: the person talked to
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A stretch of accepted speech that is not in the log, and why (never dropped silently)."""

    id: str
    channel: str
    speaker_id: str
    speaker_name: str
    start_ms: int
    end_ms: int
    # spool_quota | spool_error | spool_backlog | server_restart | node_restart (id
    # ``<burst>-restart``: the burst was cut by a restart, its audio up to then kept) |
    # clip_missing (a queued burst whose audio no node had) | transcription_failed (its job
    # failed or lost its worker 20 times) | undecodable | no_speech |
    # prompt_echo (the last two: the engine suppressed a hallucination)
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommitEvent:
    """One entry of the store's commit event sequence: ``seq`` increases with every commit."""

    seq: int
    kind: str  # "utterance" (later "alert", "announcement")
    ref: str  # what was committed: the burst id of an utterance
    channel: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class SearchQuery:
    channels: frozenset[str] | None = None  # None: every channel
    speaker: str | None = None
    q: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    before_rowid: int | None = None  # from a cursor
    limit: int = 50

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be within 1..{MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class SearchPage:
    items: tuple[Utterance, ...] = ()
    next_rowid: int | None = None  # pass as before_rowid for the next page
    rowids: tuple[int, ...] = field(default=(), repr=False)


def encode_cursor(rowid: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{rowid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """Raises ValueError for anything that is not a cursor this program made."""
    if len(cursor) > 64:
        raise ValueError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("malformed cursor") from None
    prefix, _, number = raw.partition(":")
    if prefix != "v1" or not number.isdigit() or len(number) > 19:
        raise ValueError("malformed cursor")
    return int(number)


def since_until_rowids(since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
    lo = ms_to_rowid(since_ms) if since_ms is not None else 0
    hi = ms_to_rowid(until_ms + 1) - 1 if until_ms is not None else (1 << 63) - 1
    return lo, hi


__all__ += ["CommitEvent", "ms_to_rowid", "since_until_rowids"]
