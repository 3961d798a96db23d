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

__all__ = [
    "ALERT_CHANNEL",
    "AUDIT_LOCK",
    "COMMIT_CHANNEL",
    "COMMIT_LOCK",
    "JOB_CHANNEL",
    "MIGRATIONS",
    "MIGRATION_LOCK",
]

# pg_advisory_xact_lock keys (any constant bigint, unique within this schema)
MIGRATION_LOCK = 0x766F696365_01  # "voice" 01
COMMIT_LOCK = 0x766F696365_02
AUDIT_LOCK = 0x766F696365_03
COMMIT_CHANNEL = "voice_commit"
ALERT_CHANNEL = "voice_alert"  # NOTIFYed with each alert event (migration 10's trigger)
JOB_CHANNEL = "voice_job"  # NOTIFYed when transcription jobs are queued or given back

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
    # 2: channels, accounts, channel assignments, web sessions, sign-in codes, login throttle and
    # the audit log: the tables of SQLite migrations 1 and 3, column for column (0/1 integers
    # stay integers, REAL times double precision), served through store/pgcompat.py. The
    # directory revision and the append-only audit log keep their triggers.
    """
    CREATE TABLE channel (
        name            TEXT PRIMARY KEY,
        display_name    TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        retention_days  INTEGER,
        legal_hold      INTEGER NOT NULL DEFAULT 0,
        settings        TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        display_name    TEXT NOT NULL,
        role            TEXT NOT NULL CHECK (role IN ('staff', 'supervisor', 'admin')),
        password_hash   TEXT,
        enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    );
    CREATE TABLE channel_member (
        channel         TEXT NOT NULL REFERENCES channel(name) ON DELETE CASCADE,
        user_name       TEXT NOT NULL REFERENCES users(name),
        PRIMARY KEY (channel, user_name)
    );
    CREATE INDEX channel_member_user ON channel_member(user_name);
    CREATE TABLE channel_supervisor (
        channel         TEXT NOT NULL REFERENCES channel(name) ON DELETE CASCADE,
        user_name       TEXT NOT NULL REFERENCES users(name),
        PRIMARY KEY (channel, user_name)
    );
    CREATE INDEX channel_supervisor_user ON channel_supervisor(user_name);
    CREATE TABLE directory_revision (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        n               BIGINT NOT NULL
    );
    INSERT INTO directory_revision (id, n) VALUES (1, 0);
    CREATE FUNCTION directory_revision_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE directory_revision SET n = n + 1; RETURN NULL; END $$;
    CREATE TRIGGER users_revision AFTER INSERT OR UPDATE ON users
        FOR EACH ROW EXECUTE FUNCTION directory_revision_bump();
    CREATE TRIGGER member_revision AFTER INSERT OR DELETE ON channel_member
        FOR EACH ROW EXECUTE FUNCTION directory_revision_bump();
    CREATE TRIGGER supervisor_revision AFTER INSERT OR DELETE ON channel_supervisor
        FOR EACH ROW EXECUTE FUNCTION directory_revision_bump();
    CREATE TABLE web_session (
        id_hash         TEXT PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name),
        csrf            TEXT NOT NULL,
        via             TEXT NOT NULL,
        address         TEXT NOT NULL,
        created_at      DOUBLE PRECISION NOT NULL,
        expires_at      DOUBLE PRECISION NOT NULL,
        revoked         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX web_session_user ON web_session(user_name);
    CREATE TABLE signin_code (
        code_hash       TEXT PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name),
        created_by      TEXT NOT NULL,
        created_at      DOUBLE PRECISION NOT NULL,
        expires_at      DOUBLE PRECISION NOT NULL,
        used_at         DOUBLE PRECISION
    );
    CREATE TABLE login_throttle (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failure    DOUBLE PRECISION NOT NULL,
        locked_until    DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE audit_log (
        seq             BIGINT PRIMARY KEY,
        at              TEXT NOT NULL,
        actor           TEXT NOT NULL,
        actor_role      TEXT NOT NULL,
        action          TEXT NOT NULL,
        target          TEXT NOT NULL,
        result          TEXT NOT NULL,
        address         TEXT NOT NULL,
        details         TEXT NOT NULL,
        prev_hash       TEXT NOT NULL,
        hash            TEXT NOT NULL
    );
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    """,
    # 3: call-log row kinds (the console issue's) and spoken announcements, as SQLite's 6
    """
    ALTER TABLE utterance ADD COLUMN kind TEXT NOT NULL DEFAULT 'speech';
    ALTER TABLE utterance ADD COLUMN broadcast_id TEXT;
    CREATE INDEX utterance_broadcast ON utterance (broadcast_id) WHERE broadcast_id IS NOT NULL;
    CREATE TABLE announcement (
        id              TEXT PRIMARY KEY,
        author          TEXT NOT NULL,
        author_name     TEXT NOT NULL,
        text            TEXT NOT NULL,
        language        TEXT NOT NULL,
        urgent          INTEGER NOT NULL CHECK (urgent IN (0, 1)),
        repeat          INTEGER NOT NULL,
        status          TEXT NOT NULL,
        error           TEXT NOT NULL DEFAULT '',
        seconds         DOUBLE PRECISION NOT NULL DEFAULT 0,
        clip            TEXT,
        created_ms      BIGINT NOT NULL
    );
    CREATE INDEX announcement_created ON announcement (created_ms);
    CREATE TABLE announcement_target (
        announcement_id TEXT NOT NULL REFERENCES announcement (id) ON DELETE CASCADE,
        channel         TEXT NOT NULL,
        status          TEXT NOT NULL,
        start_ms        BIGINT,
        end_ms          BIGINT,
        PRIMARY KEY (announcement_id, channel)
    );
    CREATE TABLE announcement_heard (
        announcement_id TEXT NOT NULL REFERENCES announcement (id) ON DELETE CASCADE,
        channel         TEXT NOT NULL,
        user_name       TEXT NOT NULL,
        heard           INTEGER NOT NULL CHECK (heard IN (0, 1)),
        fraction        DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (announcement_id, channel, user_name)
    );
    """,
    # 4: a direct talk's target, as SQLite's 7
    """
    ALTER TABLE utterance ADD COLUMN target_sub TEXT;
    """,
    # 5: alerts, as SQLite's 8 (alert_event.seq a sequence)
    """
    CREATE TABLE alert (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('emergency', 'keyword', 'transcription')),
        channel         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('raised', 'acknowledged', 'resolved')),
        dedupe          TEXT UNIQUE,
        raised_ms       BIGINT NOT NULL,
        raised_by       TEXT NOT NULL,
        subject         TEXT NOT NULL DEFAULT '',
        subject_name    TEXT NOT NULL DEFAULT '',
        keyword         TEXT NOT NULL DEFAULT '',
        utterance       TEXT NOT NULL DEFAULT '',
        detail          TEXT NOT NULL DEFAULT '{}',
        acked_ms        BIGINT,
        acked_by        TEXT NOT NULL DEFAULT '',
        acked_by_name   TEXT NOT NULL DEFAULT '',
        resolved_ms     BIGINT,
        resolved_by     TEXT NOT NULL DEFAULT '',
        resolved_by_name TEXT NOT NULL DEFAULT '',
        resolution      TEXT NOT NULL DEFAULT '',
        note            TEXT NOT NULL DEFAULT '',
        escalated       INTEGER NOT NULL DEFAULT 0,
        updated_ms      BIGINT NOT NULL
    );
    CREATE INDEX alert_raised ON alert (raised_ms);
    CREATE INDEX alert_channel ON alert (channel, raised_ms);
    CREATE INDEX alert_open ON alert (state) WHERE state != 'resolved';
    CREATE TABLE alert_event (
        seq             BIGSERIAL PRIMARY KEY,
        alert_id        TEXT NOT NULL,
        created_ms      BIGINT NOT NULL
    );
    CREATE TABLE alert_keyword (
        scope           TEXT NOT NULL,
        norm            TEXT NOT NULL,
        text            TEXT NOT NULL,
        position        INTEGER NOT NULL,
        PRIMARY KEY (scope, norm)
    );
    CREATE TABLE alert_cursor (
        name            TEXT PRIMARY KEY,
        seq             BIGINT NOT NULL
    );
    """,
    # 6: signed webhooks, as SQLite's 9
    """
    CREATE TABLE webhook_endpoint (
        id              TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        events          TEXT NOT NULL,
        secret          TEXT NOT NULL,
        ca_file         TEXT,
        enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_by      TEXT NOT NULL,
        created_ms      BIGINT NOT NULL
    );
    CREATE TABLE webhook_delivery (
        id              BIGSERIAL PRIMARY KEY,
        endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
        msg_id          TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        body            TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_at_ms      BIGINT NOT NULL,
        last_status     INTEGER,
        last_error      TEXT NOT NULL DEFAULT '',
        created_ms      BIGINT NOT NULL,
        updated_ms      BIGINT NOT NULL,
        UNIQUE (endpoint_id, msg_id)
    );
    CREATE INDEX webhook_delivery_due ON webhook_delivery (state, next_at_ms);
    """,
    # 7: scheduled announcements, as SQLite's 10
    """
    CREATE TABLE announcement_schedule (
        id              TEXT PRIMARY KEY,
        author          TEXT NOT NULL,
        author_name     TEXT NOT NULL,
        request         TEXT NOT NULL,
        schedule        TEXT NOT NULL,
        next_ms         BIGINT,
        status          TEXT NOT NULL,
        created_ms      BIGINT NOT NULL,
        updated_ms      BIGINT NOT NULL
    );
    CREATE INDEX announcement_schedule_next ON announcement_schedule (status, next_ms);
    CREATE TABLE announcement_fire (
        schedule_id     TEXT NOT NULL REFERENCES announcement_schedule (id) ON DELETE CASCADE,
        due_ms          BIGINT NOT NULL,
        status          TEXT NOT NULL,
        announcement_id TEXT,
        error           TEXT NOT NULL DEFAULT '',
        claimed_ms      BIGINT NOT NULL,
        PRIMARY KEY (schedule_id, due_ms)
    );
    """,
    # 8: the transcription job queue, as SQLite's 11
    """
    CREATE TABLE transcription_job (
        id              TEXT PRIMARY KEY,
        state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
        ready_ms        BIGINT NOT NULL,
        worker          TEXT NOT NULL DEFAULT '',
        attempt         INTEGER NOT NULL DEFAULT 0,
        lease_until_ms  BIGINT NOT NULL DEFAULT 0,
        commits         INTEGER NOT NULL DEFAULT 0,
        done_ms         BIGINT
    );
    CREATE INDEX transcription_job_ready ON transcription_job (state, ready_ms);
    """,
    # 9: clips readable by every node (voice_server/calllog/clips.py; SQLite keeps files)
    """
    CREATE TABLE clip (
        path            TEXT PRIMARY KEY,
        burst           TEXT NOT NULL UNIQUE,
        data            BYTEA NOT NULL,
        created_ms      BIGINT NOT NULL
    );
    """,
    # 10: each alert event NOTIFYs ALERT_CHANNEL (the alert feeds of every node wake at once)
    """
    CREATE FUNCTION alert_event_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('voice_alert', ''); RETURN NULL; END $$;
    CREATE TRIGGER alert_event_notify AFTER INSERT ON alert_event
        FOR EACH STATEMENT EXECUTE FUNCTION alert_event_notify();
    """,
    # 11: the deployment's ASR phrase list (transcribe/phrases_pg.py; SQLite keeps its file)
    """
    CREATE TABLE asr_phrases (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        phrases         TEXT NOT NULL,
        updated_ms      BIGINT NOT NULL
    );
    """,
    # 12: when each once-per-deployment job last ran (store/job_lock.py, PostgreSQL's clock;
    # SQLite has one process and needs none)
    """
    CREATE TABLE job_run (
        job             TEXT PRIMARY KEY,
        last_ms         BIGINT NOT NULL
    );
    """,
]
