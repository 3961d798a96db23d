"""What a member may replay of their channel (pure): the rows of the last 24 h, newest first,
without other people's direct talks (``kind = direct`` to someone else).

Both backends run :func:`replay_sql` on the ``(channel, id)`` index (rowids are time-ordered),
so a replay reads at most one page of rows; :func:`visible` is the same rule for a burst that
is not committed yet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from voice_server.calllog.model import MAX_LIMIT, SearchPage, Utterance, ms_to_rowid

__all__ = ["REPLAY_MS", "replay_args", "replay_page", "replay_sql", "visible"]

REPLAY_MS = 24 * 3600 * 1000  # how far back a member may replay


def visible(kind: str, speaker_id: str, target_sub: str | None, viewer: str) -> bool:
    """A row is replayable by ``viewer`` unless it is someone else's direct talk."""
    return kind != "direct" or viewer in (speaker_id, target_sub)


def replay_sql(columns: str, mark: str = "?") -> str:
    """Newest first, ``limit + 1`` rows (one more says there is an older page)."""
    return (
        f"SELECT {columns} FROM utterance WHERE channel = {mark} AND id >= {mark} "
        f"AND id <= {mark} AND (kind <> 'direct' OR speaker_id = {mark} OR target_sub = {mark}) "
        f"ORDER BY id DESC LIMIT {mark}"
    )


def replay_args(
    channel: str, viewer: str, since_ms: int, before_rowid: int | None, limit: int
) -> Sequence[Any]:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}")
    hi = before_rowid - 1 if before_rowid is not None else (1 << 63) - 1
    return (channel, ms_to_rowid(since_ms), hi, viewer, viewer, limit + 1)


def replay_page(rows: Sequence[Any], limit: int, convert: Callable[[Any], Utterance]) -> SearchPage:
    """The page of :func:`replay_sql`'s ``limit + 1`` rows (each row's first column its id)."""
    more = len(rows) > limit
    rows = rows[:limit]
    rowids = tuple(int(r[0]) for r in rows)
    return SearchPage(
        tuple(convert(r) for r in rows), rowids[-1] if more and rowids else None, rowids
    )
