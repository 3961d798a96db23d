"""A call-log search on PostgreSQL as two bounded statements (pure).

Terms are the normalized query split at spaces (:func:`~voice_server.calllog.normalize.
split_terms`). A term of 3+ characters is ``norm LIKE '%term%'``, which pg_trgm's GIN index
(``gin_trgm_ops``) serves and the row itself rechecks. A term of 1-2 characters is
``grams @> ARRAY[term]``, served by the GIN index of the grams array, plus ``strpos(norm, term)
> 0``: always rechecked against the normalized text. Channel, speaker and time filters are plain
conditions (the time range and the page cursor are one id range, as on SQLite: id order is time
order); one row more than the page tells whether another page follows.

Left to itself the planner mis-guesses how often a term occurs (pg_trgm and array selectivities
are rough): it walks the primary key backwards through the whole log for a rare term, or sorts
every hit of a common one. So the executor (:class:`~voice_server.calllog.postgres.PgCallLog`)
runs, like the SQLite race (:mod:`.plan`), a cheap exact step first:

1. :func:`bound_sql`: the id of the 1,000th newest row in the range (primary key, index only;
   with a speaker or up to 8 channels, the newest of theirs, from their index); the *window* is
   everything newer. When the window holds too few matches to promise a full page at
   :data:`WINDOW` rows (:func:`worth_widening`), the term is rare: straight to step 3; else the
   window grows to :data:`WINDOW` rows first.
2. :func:`window_sql` on the window only, with bitmap and sequential scans disabled for that
   statement (the window is read in id order from the primary key or the channel/speaker index:
   the planner cannot choose a big bitmap): the newest matches there. ``limit + 1`` of them
   settle the page: every row newer than the window's end was checked.
3. Otherwise :func:`search_sql` on the rest of the range with index scans disabled for that
   statement (``SET LOCAL enable_indexscan = off``): the term's GIN index (or the channel or
   speaker index) as a bitmap, hits sorted — few, since the term was rare in the newest rows.
"""

from __future__ import annotations

from typing import Any

from voice_server.calllog.model import SearchQuery, since_until_rowids
from voice_server.calllog.normalize import split_terms
from voice_server.calllog.plan import MAX_CHANNEL_STREAM

__all__ = [
    "COLUMNS",
    "WINDOW",
    "bound_sql",
    "id_range",
    "like_pattern",
    "search_sql",
    "window_sizes",
    "window_sql",
    "worth_widening",
]

COLUMNS = (
    "id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, text, words, model, "
    "language, clip, kind, broadcast_id, target_sub"
)


def like_pattern(term: str) -> str:
    """``%term%`` with LIKE's wildcards and escape character taken literally."""
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


WINDOW = 10_000  # newest rows checked first; a channel's or a speaker's: WINDOW // FILTERED
FILTERED = 5
GROWTH = 10  # the small window is WINDOW // GROWTH


def id_range(query: SearchQuery) -> tuple[int, int] | None:
    """The ids the query may return (time range and cursor); None when nothing can match."""
    lo, hi = since_until_rowids(query.since_ms, query.until_ms)
    if query.before_rowid is not None:
        hi = min(hi, query.before_rowid - 1)
    if lo > hi or (query.channels is not None and not query.channels):
        return None
    return lo, hi


def window_sizes(window: int) -> tuple[int, int]:
    """The two windows: a tenth of ``window`` first, then ``window`` (each at least 1)."""
    return max(1, window // GROWTH), max(1, window)


def worth_widening(found: int, want: int) -> bool:
    """After the small window: read the large one only when, at the rate seen, it would fill the
    page; a rarer term goes to the indexes at once."""
    return found * GROWTH >= want


def bound_sql(query: SearchQuery, lo: int, hi: int, window: int = WINDOW) -> tuple[str, list[Any]]:
    """Where the window ends: the id of the ``window + 1``-th newest row in ``[lo, hi]`` — of
    the speaker, or (the largest of) each channel's, when the query names them, read from their
    ``(…, id)`` index; NULL when there are not that many."""
    if query.speaker is not None:
        return (
            "SELECT id FROM utterance WHERE speaker_id = %s AND id BETWEEN %s AND %s "
            "ORDER BY id DESC OFFSET %s LIMIT 1",
            [query.speaker, lo, hi, window // FILTERED],
        )
    if query.channels is not None and len(query.channels) <= MAX_CHANNEL_STREAM:
        return (
            "SELECT max(b.id) FROM unnest(%s::text[]) AS c(name), LATERAL (SELECT id FROM "
            "utterance WHERE channel = c.name AND id BETWEEN %s AND %s ORDER BY id DESC "
            "OFFSET %s LIMIT 1) AS b",
            [sorted(query.channels), lo, hi, window // FILTERED],
        )
    return (
        "SELECT id FROM utterance WHERE id BETWEEN %s AND %s ORDER BY id DESC OFFSET %s LIMIT 1",
        [lo, hi, window],
    )


def window_sql(query: SearchQuery, lo: int, hi: int, want: int) -> tuple[str, list[Any]]:
    """:func:`search_sql` for the window, in the shape an ordered index serves: one arm per
    channel (each the ``(channel, id)`` index read backwards), merged."""
    channels = sorted(query.channels or ())
    if query.speaker is not None or not channels or len(channels) > MAX_CHANNEL_STREAM:
        return search_sql(query, lo, hi, want)
    arms: list[str] = []
    args: list[Any] = []
    for channel in channels:
        one = SearchQuery(q=query.q, channels=frozenset({channel}), limit=query.limit)
        sql, arm_args = search_sql(one, lo, hi, want)
        arms.append(f"({sql})")
        args += arm_args
    return f"SELECT * FROM ({' UNION ALL '.join(arms)}) AS w ORDER BY id DESC LIMIT %s", [
        *args,
        want,
    ]


def search_sql(query: SearchQuery, lo: int, hi: int, want: int) -> tuple[str, list[Any]]:
    """The newest ``want`` rows in ``[lo, hi]`` that match the whole query."""
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
    if query.channels is not None and len(query.channels) == 1:
        where.append("channel = %s")
        args.append(next(iter(query.channels)))
    elif query.channels is not None:
        where.append("channel = ANY(%s::text[])")
        args.append(sorted(query.channels))
    sql = f"SELECT {COLUMNS} FROM utterance WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s"
    return sql, [*args, want]
