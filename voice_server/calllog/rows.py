"""An utterance as a database row and back, the same for every backend (pure)."""

from __future__ import annotations

import json
from typing import Any

from voice_server.calllog.model import Gap, Utterance, Word
from voice_server.calllog.normalize import normalize

__all__ = ["GAP_COLUMNS", "NORM", "gap_values", "row_values", "utterance_of"]

NORM = 8  # index of the normalized text in row_values


def row_values(
    rowid: int, u: Utterance, burst_end_ms: int | None, committed_ms: int
) -> tuple[Any, ...]:
    """id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, norm, words, model,
    language, clip, burst_end_ms, committed_ms, kind, broadcast_id, target_sub."""
    words = json.dumps(
        [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in u.words],
        ensure_ascii=False,
    )
    return (
        rowid,
        u.id,
        u.channel,
        u.speaker_id,
        u.speaker_name,
        u.start_ms,
        u.end_ms,
        u.text,
        normalize(u.text, u.language),
        words,
        u.model,
        u.language,
        u.clip,
        burst_end_ms,
        committed_ms,
        u.kind,
        u.broadcast_id,
        u.target_sub,
    )


def utterance_of(row: Any) -> Utterance:
    """``row``: anything indexed by column name (sqlite3.Row, a dict)."""
    words = tuple(
        Word(str(w["word"]), float(w["start"]), float(w["end"]), float(w["conf"]))
        for w in json.loads(row["words"] or "[]")
    )
    return Utterance(
        id=row["uid"],
        channel=row["channel"],
        speaker_id=row["speaker_id"],
        speaker_name=row["speaker_name"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        text=row["text"],
        words=words,
        model=row["model"],
        language=row["language"],
        clip=row["clip"],
        kind=row["kind"],
        broadcast_id=row["broadcast_id"],
        target_sub=row["target_sub"],
    )


GAP_COLUMNS = "uid, channel, speaker_id, speaker_name, start_ms, end_ms, reason, detail, created_ms"


def gap_values(gap: Gap, created_ms: int) -> tuple[Any, ...]:
    """The values of :data:`GAP_COLUMNS` (a gap's detail is kept to 500 characters)."""
    return (
        gap.id,
        gap.channel,
        gap.speaker_id,
        gap.speaker_name,
        gap.start_ms,
        gap.end_ms,
        gap.reason,
        gap.detail[:500],
        created_ms,
    )
