"""``voice-server db copy``: move a SQLite deployment into an empty PostgreSQL database.

Every table of the store is copied row for row in one PostgreSQL transaction (COPY), ids and
sequence numbers kept: the audit chain verifies after the copy as before, and commit event seqs
go on from where they were. The call log's side index is rebuilt from the normalized text (the
grams array; SQLite's FTS5 tables are not copied, pg_trgm indexes the text itself). The
transcription queue's jobs are copied; the clips go into the ``clip`` table (PostgreSQL's
default ClipStore, so every node plays them): each committed row's clip file of the data
directory (a shared all-call clip once), and each spool file still waiting for its transcript
(under the clip path its tags give), in the same transaction, and the ASR phrase list file into
its row. A clip file missing on disk is
counted, not fatal. A target that holds any row of these tables is refused: a copy never merges.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_server.calllog.burst import DONE, SPOOL_DIR, BurstMeta, clip_path
from voice_server.calllog.normalize import short_grams
from voice_server.calllog.ogg import read_ogg_opus
from voice_server.store.database import Database, DatabaseError
from voice_server.store.pg import PgDatabase

__all__ = ["TABLES", "CopyReport", "copy_sqlite_to_postgres"]

PHRASES_FILE = "asr_phrases.json"  # transcribe/phrases.py FILE (the deployment's ASR phrases)

# parents before children (foreign keys); with each, the sequence its id column feeds, if any
TABLES: list[tuple[str, str | None]] = [
    ("channel", None),
    ("users", None),
    ("channel_member", None),
    ("channel_supervisor", None),
    ("web_session", None),
    ("signin_code", None),
    ("login_throttle", None),
    ("audit_log", None),
    ("utterance", None),
    ("gap", "id"),
    ("commit_event", "seq"),
    ("alert", None),
    ("alert_event", "seq"),
    ("alert_keyword", None),
    ("alert_cursor", None),
    ("webhook_endpoint", None),
    ("webhook_delivery", "id"),
    ("announcement", None),
    ("announcement_target", None),
    ("announcement_heard", None),
    ("announcement_schedule", None),
    ("announcement_fire", None),
    ("transcription_job", None),
    ("clip", None),  # filled from the data directory's files, not from a SQLite table
    ("asr_phrases", None),  # ... and from its ASR phrase list file
]
FILE_TABLES = {"clip", "asr_phrases"}


@dataclass(frozen=True, slots=True)
class CopyReport:
    rows: dict[str, int]
    missing_clips: int = 0  # committed rows whose clip file was not in the data directory


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _refuse_non_empty(pg: Any) -> None:
    for table, _ in TABLES:
        if pg.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0]:
            raise DatabaseError(
                f"the target database is not empty (table {table} has rows): "
                "db copy only fills an empty database"
            )


def copy_sqlite_to_postgres(source: Path, target: PgDatabase) -> CopyReport:
    if not source.is_file():
        raise DatabaseError(f"no SQLite database at {source}")
    src = Database(source)  # migrated to this program's schema first, as the server would
    counts: dict[str, int] = {}
    with src.connection() as lite, target.transaction() as pg:
        pg.execute("LOCK TABLE " + ", ".join(t for t, _ in TABLES) + " IN EXCLUSIVE MODE")
        _refuse_non_empty(pg)
        for table, serial in TABLES:
            if table in FILE_TABLES:
                continue
            cols = _columns(lite, table)
            grams = table == "utterance"
            norm = cols.index("norm") if grams else -1
            names = [*cols, "grams"] if grams else cols
            n = 0
            with pg.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as out:
                for row in lite.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                    values = list(row)
                    if grams:
                        values.append(sorted(short_grams(values[norm])))
                    out.write_row(values)
                    n += 1
            counts[table] = n
            if serial is not None:
                seq = lite.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
                ).fetchone()
                top = max(int(seq[0]) if seq else 0, n and _max(lite, table, serial))
                if top:
                    pg.execute(
                        "SELECT setval(pg_get_serial_sequence(%s, %s), %s)", (table, serial, top)
                    )
        revision = lite.execute("SELECT n FROM directory_revision").fetchone()
        pg.execute("UPDATE directory_revision SET n = greatest(n, %s)", (int(revision[0]),))
        counts["clip"], missing = _copy_clips(lite, pg, source.parent)
        counts["asr_phrases"] = _copy_phrases(pg, source.parent)
    src.close()
    return CopyReport(counts, missing)


def _copy_clips(lite: sqlite3.Connection, pg: Any, data_dir: Path) -> tuple[int, int]:
    """Upload the data directory's clips into ``clip``: (clips copied, committed rows' clips
    not found)."""
    done: set[str] = set()
    missing = 0
    with pg.cursor().copy("COPY clip (path, burst, data, created_ms) FROM STDIN") as out:
        for clip, committed in lite.execute(
            "SELECT DISTINCT clip, committed_ms FROM utterance WHERE clip IS NOT NULL"
        ):
            if clip in done:
                continue
            try:
                data = (data_dir / clip).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                missing += 1
                continue
            done.add(clip)
            out.write_row([clip, Path(clip).name.removesuffix(DONE), data, committed])
        for path in sorted((data_dir / SPOOL_DIR).glob(f"*{DONE}")):
            try:
                data = path.read_bytes()
                meta = BurstMeta.from_tags(read_ogg_opus(data).tags)
            except (OSError, ValueError):
                continue  # not a finished burst of ours: the catch-up reports it
            clip = clip_path(meta)
            if clip not in done:
                done.add(clip)
                out.write_row([clip, meta.id, data, meta.start_ms])
    return len(done), missing


def _copy_phrases(pg: Any, data_dir: Path) -> int:
    """The data directory's ASR phrase list into its row (1, or 0 when there is none); read as
    transcribe/phrases.py reads it, and cleaned again there on every load."""
    try:
        data = json.loads((data_dir / PHRASES_FILE).read_text(encoding="utf-8"))
        phrases = [p for p in data.get("phrases", []) if isinstance(p, str)]
    except (OSError, ValueError, AttributeError):
        return 0
    pg.execute(
        "INSERT INTO asr_phrases (id, phrases, updated_ms) VALUES (1, %s, %s)",
        (json.dumps(phrases, ensure_ascii=False), int(time.time() * 1000)),
    )
    return 1


def _max(conn: sqlite3.Connection, table: str, column: str) -> int:
    return int(conn.execute(f"SELECT max({column}) FROM {table}").fetchone()[0] or 0)
