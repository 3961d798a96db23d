"""``voice-server bench search --backend postgres``: the same classes, timed on
:class:`~voice_server.calllog.postgres.PgCallLog`. Without ``--database-url`` it starts its own
PostgreSQL in a temporary folder (:mod:`.pgserver`; as the ``postgres`` user when run as root).
The log is built with ``PgCallLog.add_many`` (COPY, both GIN indexes maintained as rows go in:
the insert rate is the one a live deployment sees), then ANALYZEd. Targets: p95 ≤ 50 ms for 1-,
2- and 3+-character terms, newest 50 (issue: the shared store on PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from voice_server.bench.search_data import Corpus

__all__ = ["INDEXES", "TARGET_MS", "build", "database", "sizes"]

TARGET_MS = {"1": 50.0, "2": 50.0, "3+": 50.0}
INDEXES = {
    "utterance_trgm": "trigram GIN index",
    "utterance_grams": "1-2 character grams GIN index",
    "utterance_channel": "channel index",
    "utterance_speaker": "speaker index",
}
BATCH = 50_000


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """``url``, or a fresh database on a PostgreSQL started for this run."""
    if url is not None:
        yield url
        return
    from voice_server.bench.pgserver import running_postgres

    with running_postgres() as server:
        yield server.new_database("bench")


def build(log: Any, corpus: Corpus) -> float:
    started = time.perf_counter()
    batch = []
    for u in corpus.utterances():
        batch.append(u)
        if len(batch) >= BATCH:
            log.add_many(batch, committed_ms=u.end_ms)
            batch = []
    if batch:
        log.add_many(batch, committed_ms=batch[-1].end_ms)
    seconds = time.perf_counter() - started
    with log._db.connection() as conn:
        conn.execute("ANALYZE utterance")
    return seconds


def sizes(log: Any) -> dict[str, Any]:
    with log._db.connection() as conn:
        row = conn.execute(
            "SELECT pg_database_size(current_database()), pg_table_size('utterance')"
        ).fetchone()
        out: dict[str, Any] = {"database_bytes": int(row[0]), "utterance_table_bytes": int(row[1])}
        for index in INDEXES:
            got = conn.execute("SELECT pg_relation_size(%s::regclass)", (index,)).fetchone()
            out[f"{index}_bytes"] = int(got[0])
    return out
