"""Runs a search :class:`~voice_server.calllog.plan.Plan` on SQLite: the streams advance in turn
by growing chunks until one of them settles the page (see the plan module for why that is
exact). One statement per stream and chunk returns each candidate's rowid and whether its row
matches the whole query; the full rows of the page are read once at the end."""

from __future__ import annotations

import sqlite3

from voice_server.calllog.plan import Plan, Stream, first_chunk, next_step

__all__ = ["COLUMNS", "chunk_sql", "rows_sql", "run_plan"]

COLUMNS = (
    "id",
    "uid",
    "channel",
    "speaker_id",
    "speaker_name",
    "start_ms",
    "end_ms",
    "text",
    "words",
    "model",
    "language",
    "clip",
    "kind",
    "broadcast_id",
    "target_sub",
)


def chunk_sql(stream: Stream, where: str) -> str:
    """One step of one stream: its candidates and, for each, whether the row matches (LEFT
    JOIN: a candidate whose row is gone still counts as scanned)."""
    return f"SELECT c.id, ({where}) FROM ({stream.sql}) AS c LEFT JOIN utterance u ON u.id = c.id"


def rows_sql(count: int) -> str:
    marks = ",".join("?" * count)
    return f"SELECT {', '.join(COLUMNS)} FROM utterance WHERE id IN ({marks}) ORDER BY id DESC"


def run_plan(conn: sqlite3.Connection, plan: Plan) -> tuple[list[sqlite3.Row], bool]:
    """The newest ``limit`` matching rows (newest first), and whether there are more."""
    if plan.empty:
        return [], False
    streams = plan.streams
    sqls = [chunk_sql(s, plan.where) for s in streams]
    tops = [plan.hi] * len(streams)
    found: list[list[int]] = [[] for _ in streams]
    scanned = [0] * len(streams)
    want = plan.limit + 1
    cursor = conn.cursor()
    cursor.row_factory = None

    def advance(i: int, size: int) -> bool:
        """Read ``size`` more candidates of stream ``i``; True when that settles the page."""
        params = (*plan.args, *streams[i].params(plan.lo, tops[i], size))
        got: list[tuple[int, int | None]] = cursor.execute(sqls[i], params).fetchall()
        found[i] += sorted((rid for rid, ok in got if ok), reverse=True)
        scanned[i] += len(got)
        if len(found[i]) >= want or len(got) < size:
            return True
        tops[i] = min(rid for rid, _ in got) - 1
        return False

    winner: list[int] | None = None
    size = first_chunk(plan.limit)
    for i in range(len(streams)):
        if advance(i, size):
            winner = found[i][:want]
            break
    while winner is None:
        i, size = next_step([len(f) for f in found], scanned, want)
        if advance(i, size):
            winner = found[i][:want]
    assert winner is not None
    ids = winner[: plan.limit]
    rows = conn.execute(rows_sql(len(ids)), ids).fetchall() if ids else []
    return rows, len(winner) > plan.limit
