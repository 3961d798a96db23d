"""How a call-log search runs: candidate streams raced in growing chunks (pure).

A query is a set of terms (normalized, split at spaces), an optional channel set, speaker, time
range and page cursor. Rowid order is time order (:mod:`voice_server.calllog.model`), so the time
range and the cursor become one rowid range ``[lo, hi]``. Every *stream* yields candidate rowids
newest first inside that range from one index:

- ``text``: the trigram FTS5 index, ``MATCH`` of the 3+ character terms — and only of them: no
  time, channel or speaker filter ever goes into a ``MATCH`` expression (that can turn
  milliseconds into minutes); the rowid range is a constraint FTS5 serves itself;
- ``grams``: the 1-2 character side index (FTS5 over each gram's token), ``MATCH`` of the 1-2
  character terms;
- ``speaker``: the ``(speaker_id, id)`` index; ``channels``: the ``(channel, id)`` index, one
  range per channel merged (``UNION ALL``, each arm already in order), for up to
  :data:`MAX_CHANNEL_STREAM` channels;
- ``range``: the table itself by rowid, when a start time is given or nothing else narrows.

Each candidate is then checked against the *whole* query on its row (:attr:`Plan.where`: channel,
speaker, and every term as a substring of the normalized text, which is what both indexes
match). The executor (:mod:`voice_server.calllog.search`) reads a first chunk from every
stream, then keeps advancing the stream that promises the page soonest (:func:`next_step`: its
matches so far per candidate read, smoothed, re-estimated after every chunk) and stops as soon as
one stream has either found ``limit + 1`` matches or run dry. Every row that satisfies the query
satisfies each stream's own condition, so everything newer than that stream's position has been
checked: its matches are exactly the newest ones, whatever the estimates said. The estimates only
decide the cost; no hit is ever sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice_server.calllog.model import SearchQuery, since_until_rowids
from voice_server.calllog.normalize import gram_token, split_terms

__all__ = ["MAX_CHANNEL_STREAM", "Plan", "Stream", "first_chunk", "fts_phrase", "next_step", "plan"]

MAX_CHANNEL_STREAM = 8
FIRST_CHUNK = 64
MAX_CHUNK = 16384
MARGIN = 1.25

Param = int | str


@dataclass(frozen=True, slots=True)
class Stream:
    """Candidate rowids newest first: ``sql`` takes ``args`` then ``lo, hi, n`` for each arm."""

    name: str
    sql: str
    args: tuple[Param, ...]
    arms: int = 1  # how many times (lo, hi, n) follow args (channels: one per channel)

    def params(self, lo: int, hi: int, n: int) -> tuple[Param, ...]:
        if self.arms == 1:
            return (*self.args, lo, hi, n)
        out: list[Param] = []
        for arg in self.args:
            out += [arg, lo, hi, n]
        return (*out, n)


@dataclass(frozen=True, slots=True)
class Plan:
    lo: int
    hi: int
    limit: int
    streams: tuple[Stream, ...]
    where: str  # the whole query as a condition on the row ``u``
    args: tuple[Param, ...]

    @property
    def empty(self) -> bool:
        return not self.streams or self.lo > self.hi


def fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def first_chunk(limit: int) -> int:
    """Candidates read from every stream first: 64, or the page size + 1 when larger."""
    return max(FIRST_CHUNK, limit + 1)


def next_step(found: list[int], scanned: list[int], want: int) -> tuple[int, int]:
    """Which stream to advance next, and by how many candidates: the one whose observed match
    rate (matches + 0.5 per candidates read + 1) needs the fewest further candidates to reach
    ``want`` matches; 25 % more than that estimate, within 64..16384."""
    best, best_need = 0, float("inf")
    for i, (hits, seen) in enumerate(zip(found, scanned, strict=True)):
        need = (want - hits) * (seen + 1) / (hits + 0.5)
        if need < best_need:
            best, best_need = i, need
    return best, int(min(MAX_CHUNK, max(FIRST_CHUNK, best_need * MARGIN)))


_TEXT = (
    "SELECT rowid AS id FROM utterance_fts WHERE utterance_fts MATCH ? "
    "AND rowid BETWEEN ? AND ? ORDER BY rowid DESC LIMIT ?"
)
_GRAMS = (
    "SELECT rowid AS id FROM utterance_grams WHERE utterance_grams MATCH ? "
    "AND rowid BETWEEN ? AND ? ORDER BY rowid DESC LIMIT ?"
)
_SPEAKER = (
    "SELECT id FROM utterance INDEXED BY utterance_speaker WHERE speaker_id = ? "
    "AND id BETWEEN ? AND ? ORDER BY id DESC LIMIT ?"
)
_CHANNEL_ARM = (
    "SELECT id FROM (SELECT id FROM utterance INDEXED BY utterance_channel WHERE channel = ? "
    "AND id BETWEEN ? AND ? ORDER BY id DESC LIMIT ?)"
)
_RANGE = "SELECT id FROM utterance WHERE id BETWEEN ? AND ? ORDER BY id DESC LIMIT ?"


def _channels_stream(channels: list[str]) -> Stream:
    if len(channels) == 1:
        sql = _CHANNEL_ARM
    else:
        sql = " UNION ALL ".join([_CHANNEL_ARM] * len(channels)) + " ORDER BY id DESC LIMIT ?"
    return Stream("channels", sql, tuple(channels), arms=len(channels))


def plan(query: SearchQuery) -> Plan:
    """The streams and the row condition of ``query`` (no I/O)."""
    lo, hi = since_until_rowids(query.since_ms, query.until_ms)
    if query.before_rowid is not None:
        hi = min(hi, query.before_rowid - 1)
    terms = split_terms(query.q or "")
    long_terms = [t for t in terms if len(t) >= 3]
    short_terms = [t for t in terms if len(t) < 3]
    where: list[str] = []
    args: list[Param] = []
    streams: list[Stream] = []
    if long_terms:
        match = " AND ".join(fts_phrase(t) for t in long_terms)
        streams.append(Stream("text", _TEXT, (match,)))
    if short_terms:
        match = " AND ".join(fts_phrase(gram_token(t)) for t in short_terms)
        streams.append(Stream("grams", _GRAMS, (match,)))
    for term in terms:
        where.append("instr(u.norm, ?) > 0")
        args.append(term)
    if query.speaker is not None:
        streams.append(Stream("speaker", _SPEAKER, (query.speaker,)))
        where.append("u.speaker_id = ?")
        args.append(query.speaker)
    if query.channels is not None:
        channels = sorted(query.channels)
        if not channels:
            return Plan(lo, hi, query.limit, (), "0", ())
        if len(channels) <= MAX_CHANNEL_STREAM:
            streams.append(_channels_stream(channels))
        where.append(f"u.channel IN ({','.join('?' * len(channels))})")
        args += channels
    if not streams or query.since_ms is not None:
        streams.append(Stream("range", _RANGE, ()))
    return Plan(lo, hi, query.limit, tuple(streams), " AND ".join(where) or "1", tuple(args))
