"""The PostgreSQL schema: migrations as SQL scripts, in order (pure).

``voice_schema.version`` records how many ran. Like :data:`voice_server.store.database.MIGRATIONS`
for SQLite, later issues append and never edit a released entry. Both backends keep the same
tables and columns where they can, so ``db copy`` moves rows as they are; where they differ:

- the call log's full-text index is pg_trgm's GIN (``gin_trgm_ops`` on the normalized text,
  which needs a UTF-8 ``LC_CTYPE``), and its 1-2 character side index a ``text[]`` column of the
  text's distinct 1- and 2-character grams with a GIN index (instead of SQLite's FTS5 tables);
- ``commit_event.seq`` is a sequence; writers take :data:`COMMIT_LOCK` so that seq order is
  commit order, and NOTIFY :data:`COMMIT_CHANNEL` with the seq in the same transaction.
"""

from __future__ import annotations

__all__ = ["AUDIT_LOCK", "COMMIT_CHANNEL", "COMMIT_LOCK", "MIGRATIONS", "MIGRATION_LOCK"]

# pg_advisory_xact_lock keys (any constant bigint, unique within this schema)
MIGRATION_LOCK = 0x766F696365_01  # "voice" 01
COMMIT_LOCK = 0x766F696365_02
AUDIT_LOCK = 0x766F696365_03
COMMIT_CHANNEL = "voice_commit"

MIGRATIONS: list[str] = [
    # 1: the call log (voice_server/calllog/postgres.py): utterances with their trigram and
    # short-gram indexes, gaps, the commit event sequence. id = burst start ms << 10 | 10 random
    # bits (calllog/model.py rowid_of), so id order is time order.
    """
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE TABLE utterance (
        id              BIGINT PRIMARY KEY,
        uid             TEXT NOT NULL UNIQUE,
        channel         TEXT NOT NULL,
        speaker_id      TEXT NOT NULL,
        speaker_name    TEXT NOT NULL,
        start_ms        BIGINT NOT NULL,
        end_ms          BIGINT NOT NULL,
        text            TEXT NOT NULL,
        norm            TEXT NOT NULL,
        grams           TEXT[] NOT NULL,
        words           TEXT NOT NULL DEFAULT '[]',
        model           TEXT NOT NULL,
        language        TEXT NOT NULL,
        clip            TEXT,
        burst_end_ms    BIGINT,
        committed_ms    BIGINT NOT NULL
    );
    CREATE INDEX utterance_channel ON utterance (channel, id);
    CREATE INDEX utterance_speaker ON utterance (speaker_id, id);
    CREATE INDEX utterance_trgm ON utterance USING gin (norm gin_trgm_ops) WITH (fastupdate = off);
    CREATE INDEX utterance_grams ON utterance USING gin (grams) WITH (fastupdate = off);
    CREATE TABLE gap (
        id              BIGSERIAL PRIMARY KEY,
        uid             TEXT NOT NULL UNIQUE,
        channel         TEXT NOT NULL,
        speaker_id      TEXT NOT NULL,
        speaker_name    TEXT NOT NULL,
        start_ms        BIGINT NOT NULL,
        end_ms          BIGINT NOT NULL,
        reason          TEXT NOT NULL,
        detail          TEXT NOT NULL DEFAULT '',
        created_ms      BIGINT NOT NULL
    );
    CREATE INDEX gap_channel ON gap (channel, start_ms);
    CREATE INDEX gap_start ON gap (start_ms);
    CREATE TABLE commit_event (
        seq             BIGSERIAL PRIMARY KEY,
        kind            TEXT NOT NULL,
        ref             TEXT NOT NULL,
        channel         TEXT NOT NULL,
        created_ms      BIGINT NOT NULL
    );
    """,
]
