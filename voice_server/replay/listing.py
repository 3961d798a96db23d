"""The replay list of one channel for one member (pure): committed call-log rows and bursts
that ended but are not transcribed yet (listed from the burst's end; their text comes when the
transcriber commits), newest first, each marked *missed* when the member was away for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from voice_server.calllog.model import Utterance, iso
from voice_server.calllog.replay import visible

__all__ = ["PendingBurst", "ReplayItem", "merge"]


@dataclass(frozen=True, slots=True)
class PendingBurst:
    """A burst on disk in the spool: accepted, not committed yet."""

    id: str
    channel: str
    speaker_id: str
    speaker_name: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class ReplayItem:
    id: str
    channel: str
    kind: str
    speaker_id: str
    speaker_name: str
    start_ms: int
    end_ms: int
    text: str | None  # None until the transcriber commits
    has_clip: bool
    missed: bool

    def as_api(self, clip_url: str | None, tz: tzinfo | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "speaker_id": self.speaker_id,
            "speaker_name": self.speaker_name,
            "start": iso(self.start_ms, tz),
            "end": iso(self.end_ms, tz),
            "text": self.text,
            "committed": self.text is not None,
            "missed": self.missed,
            "clip_url": clip_url,
        }


Heard = Callable[[int, int], bool | None]  # (start, end) -> heard / not / unknown


def merge(
    viewer: str,
    committed: Iterable[Utterance],
    pending: Iterable[PendingBurst],
    heard: Heard,
    *,
    since_ms: int,
) -> list[ReplayItem]:
    """Newest first; a pending burst already committed is listed once (as committed)."""
    items: dict[str, ReplayItem] = {}
    for u in committed:
        if visible(u.kind, u.speaker_id, u.target_sub, viewer):
            items[u.id] = _item(viewer, u.id, u.channel, u.kind, u, u.text, bool(u.clip), heard)
    for p in pending:
        if p.id not in items and p.start_ms >= since_ms:
            items[p.id] = _item(viewer, p.id, p.channel, "speech", p, None, True, heard)
    return sorted(items.values(), key=lambda i: (i.start_ms, i.id), reverse=True)


def _item(
    viewer: str,
    uid: str,
    channel: str,
    kind: str,
    row: Utterance | PendingBurst,
    text: str | None,
    has_clip: bool,
    heard: Heard,
) -> ReplayItem:
    missed = row.speaker_id != viewer and heard(row.start_ms, row.end_ms) is False
    return ReplayItem(
        uid,
        channel,
        kind,
        row.speaker_id,
        row.speaker_name,
        row.start_ms,
        row.end_ms,
        text,
        has_clip,
        missed,
    )
