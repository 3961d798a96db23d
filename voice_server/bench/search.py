"""``voice-server bench search``: call-log search latency on synthetic Japanese utterances.

Builds a call log of ``--rows`` utterances (:mod:`voice_server.bench.search_data`: 50 channels,
a year) with the real store (``SqliteCallLog.add_many``: executemany in transactions of 50,000
rows), then times ``SqliteCallLog.search`` — the code the dashboard and the API run, newest 50
first — for every class: query length (1, 2, 3+ characters) × frequency (common, rare, none) ×
filter (none; one channel; three channels, as a supervisor sees; one speaker; one week). Each
class runs ``--runs`` queries with different channels, speakers and weeks; the figures are
p50/p95/max in ms per class, and per length the worst class p95 against the targets (3+: 10 ms,
1-2: 100 ms). Also: build time, database and index sizes (``dbstat``).
``--backend postgres``: the same on PostgreSQL (:mod:`.search_pg`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from voice_server.bench.search_data import (
    CHANNELS,
    SPEAKERS_PER_CHANNEL,
    TERMS,
    Corpus,
    channel_name,
    speaker_id,
)
from voice_server.bench.stats import summarize
from voice_server.calllog.model import SearchQuery
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

__all__ = ["add_parser", "build", "main", "measure"]

BATCH = 50_000
WEEK_MS = 7 * 86_400_000
TARGET_MS = {"1": 100.0, "2": 100.0, "3+": 10.0}
FILTERS = ("none", "channel", "channels3", "speaker", "week")
INDEXES = {
    "utterance_fts": "trigram index",
    "utterance_grams": "1-2 character side index",
    "utterance_channel": "channel index",
    "utterance_speaker": "speaker index",
}


def add_parser(bsub: Any) -> None:
    p = bsub.add_parser("search", help="call-log search: latency per query class, index size")
    p.add_argument("--rows", type=int, default=1_000_000, help="utterances (default 1,000,000)")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--runs", type=int, default=30, help="queries per class (default 30)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--db", type=Path, help="build here and keep it (default: a temporary file)")
    p.add_argument("--reuse", action="store_true", help="time an existing --db, do not build")
    p.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument(
        "--database-url",
        help="postgres: an empty database to build in (default: start a PostgreSQL of its own)",
    )


def build(db_path: Path, corpus: Corpus) -> float:
    """Fill a fresh database; return the seconds it took (including index merges)."""
    db = Database(db_path)
    log = SqliteCallLog(db)
    started = time.perf_counter()
    with db.connection() as conn:
        conn.execute("PRAGMA cache_size=-262144")
    batch = []
    for u in corpus.utterances():
        batch.append(u)
        if len(batch) >= BATCH:
            log.add_many(batch, committed_ms=u.end_ms)
            batch = []
    if batch:
        log.add_many(batch, committed_ms=batch[-1].end_ms)
    with db.connection() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    seconds = time.perf_counter() - started
    db.close()
    return seconds


def _query(kind: str, term: str, rng: random.Random, start_ms: int, end_ms: int) -> SearchQuery:
    if kind == "channel":
        return SearchQuery(q=term, channels=frozenset({channel_name(rng.randrange(CHANNELS))}))
    if kind == "channels3":
        picks = rng.sample(range(CHANNELS), 3)
        return SearchQuery(q=term, channels=frozenset(channel_name(c) for c in picks))
    if kind == "speaker":
        return SearchQuery(
            q=term, speaker=speaker_id(rng.randrange(CHANNELS * SPEAKERS_PER_CHANNEL))
        )
    if kind == "week":
        since = start_ms + rng.randrange(max(end_ms - start_ms - WEEK_MS, 1))
        return SearchQuery(q=term, since_ms=since, until_ms=since + WEEK_MS)
    return SearchQuery(q=term)


def measure(
    log: Any, corpus: Corpus, runs: int, seed: int, targets: dict[str, float] = TARGET_MS
) -> dict[str, Any]:
    """Time every class; ``runs`` queries each (after one untimed warm-up query)."""
    rng = random.Random(seed)
    classes: dict[str, Any] = {}
    worst: dict[str, float] = {}
    for length, by_freq in TERMS.items():
        for freq, term in by_freq.items():
            for kind in FILTERS:
                log.search(_query(kind, term, rng, corpus.start_ms, corpus.end_ms))
                times: list[float] = []
                hits = 0
                for _ in range(runs):
                    query = _query(kind, term, rng, corpus.start_ms, corpus.end_ms)
                    started = time.perf_counter()
                    page = log.search(query)
                    times.append(time.perf_counter() - started)
                    hits += len(page.items)
                stats = summarize(times, scale=1e3, ps=(50, 95))
                classes[f"{length}/{freq}/{kind}"] = {
                    "term": term,
                    "p50_ms": round(float(stats["p50"] or 0), 3),
                    "p95_ms": round(float(stats["p95"] or 0), 3),
                    "max_ms": round(float(stats["max"] or 0), 3),
                    "hits_per_page": round(hits / max(runs, 1), 1),
                }
                worst[length] = max(worst.get(length, 0.0), float(stats["p95"] or 0))
    return {
        "classes": classes,
        "worst_p95_ms": {k: round(v, 3) for k, v in worst.items()},
        "targets_p95_ms": targets,
        "meets_targets": all(worst[k] <= targets[k] for k in worst),
    }


def sizes(db_path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db_path)
    try:
        out: dict[str, Any] = {"database_bytes": db_path.stat().st_size}
        try:
            rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.Error:
            return out  # SQLite built without dbstat
        by_name = {str(n): int(b) for n, b in rows}
        for index in INDEXES:
            out[f"{index}_bytes"] = sum(b for n, b in by_name.items() if n.startswith(index))
        out["utterance_table_bytes"] = by_name.get("utterance", 0)
        return out
    finally:
        conn.close()


def main(args: argparse.Namespace) -> int:
    if args.rows < 1 or args.runs < 1:
        raise SystemExit("bench search: --rows and --runs must be at least 1")
    corpus = Corpus(args.rows, end_ms=int(time.time() * 1000), seed=args.seed)
    own_dir = None
    if args.db is None:
        own_dir = tempfile.TemporaryDirectory(prefix="bench-search-")
        db_path = Path(own_dir.name) / "voice.db"
    else:
        db_path = args.db
    report: dict[str, Any] = {"rows": args.rows, "runs": args.runs, "cpus": os.cpu_count()}
    if args.backend == "postgres":
        if args.db is not None or args.reuse:
            raise SystemExit("bench search: --db/--reuse are for sqlite (postgres: --database-url)")
        return _postgres(args, corpus, report)
    try:
        if args.reuse:
            if not db_path.exists():
                raise SystemExit(f"bench search: --reuse: {db_path} does not exist")
            with sqlite3.connect(db_path) as conn:
                last = conn.execute("SELECT max(start_ms) FROM utterance").fetchone()[0]
                report["rows"] = conn.execute("SELECT count(*) FROM utterance").fetchone()[0]
            corpus = Corpus(report["rows"], end_ms=int(last or 0) + 1, seed=args.seed)
            report["build_seconds"] = None
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path}{suffix}").unlink(missing_ok=True)
            report["build_seconds"] = round(build(db_path, corpus), 1)
        report.update(sizes(db_path))
        report.update(measure(SqliteCallLog(Database(db_path)), corpus, args.runs, args.seed))
    finally:
        if own_dir is not None:
            own_dir.cleanup()
    return _write(report, args)


def _postgres(args: argparse.Namespace, corpus: Corpus, report: dict[str, Any]) -> int:
    from voice_server.bench import search_pg
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    report["backend"] = "postgres"
    with search_pg.database(args.database_url) as url:
        db = PgDatabase(url).open()
        try:
            log = PgCallLog(db)
            seconds = search_pg.build(log, corpus)
            report["build_seconds"] = round(seconds, 1)
            report["insert_rows_per_second"] = round(args.rows / max(seconds, 1e-9))
            report.update(search_pg.sizes(log))
            report.update(measure(log, corpus, args.runs, args.seed, search_pg.TARGET_MS))
        finally:
            db.close()
    return _write(report, args)


def _write(report: dict[str, Any], args: argparse.Namespace) -> int:
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0
