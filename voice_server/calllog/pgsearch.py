"""A call-log search as one PostgreSQL statement (pure).

Terms are the normalized query split at spaces (:func:`~voice_server.calllog.normalize.
split_terms`). A term of 3+ characters is ``norm LIKE '%term%'``, which pg_trgm's GIN index
(``gin_trgm_ops``) serves and the row itself rechecks. A term of 1-2 characters is
``grams @> ARRAY[term]``, served by the GIN index of the grams array, plus ``strpos(norm, term)
> 0``: always rechecked against the normalized text. Channel, speaker and time filters are plain
conditions (the time range and the page cursor are one id range, as on SQLite: id order is time
order); newest first is ``ORDER BY id DESC`` with one row more than the page to tell whether
another page follows. The planner picks among the indexes (both GIN indexes, ``(channel, id)``,
``(speaker_id, id)``, the primary key read backwards).
"""

from __future__ import annotations

from typing import Any

from voice_server.calllog.model import SearchQuery, since_until_rowids
from voice_server.calllog.normalize import split_terms

__all__ = ["COLUMNS", "like_pattern", "search_sql"]

COLUMNS = (
    "id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, words, model, "
    "language, clip"
)


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's wildcards and escape character taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_sql(query: SearchQuery) -> tuple[str, list[Any]] | None:
    """The statement and its parameters; None when nothing can match."""
    lo, hi = since_until_rowids(query.since_ms, query.until_ms)
    if query.before_rowid is not None:
        hi = min(hi, query.before_rowid - 1)
    if lo > hi or (query.channels is not None and not query.channels):
        return None
    where = ["id BETWEEN %s AND %s"]
    args: list[Any] = [lo, hi]
    for term in split_terms(query.q or ""):
        if len(term) >= 3:
            where.append("norm LIKE %s")
            args.append(like_pattern(term))
        else:
            where.append("grams @> ARRAY[%s]::text[] AND strpos(norm, %s) > 0")
            args += [term, term]
    if query.speaker is not None:
        where.append("speaker_id = %s")
        args.append(query.speaker)
    if query.channels is not None:
        where.append("channel = ANY(%s::text[])")
        args.append(sorted(query.channels))
    sql = f"SELECT {COLUMNS} FROM utterance WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
    return sql, [*args, query.limit + 1]
