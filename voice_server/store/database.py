"""The embedded SQLite database: connection settings and schema migrations.

Migrations are an ordered list of SQL scripts; ``PRAGMA user_version`` records how many ran.
Later issues append to :data:`MIGRATIONS`, never edit a released entry.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIGRATIONS: list[str] = [
    # 1: channels
    """
    CREATE TABLE channel (
        name            TEXT PRIMARY KEY,
        display_name    TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        retention_days  INTEGER,
        legal_hold      INTEGER NOT NULL DEFAULT 0,
        settings        TEXT NOT NULL DEFAULT '{}'
    ) WITHOUT ROWID;
    """,
    # 2: the call log (voice_server/calllog/sqlite.py): utterances, their FTS5 trigram index
    # (external content, kept in sync by triggers), the 1-2 character side index, gaps.
    # rowid = burst start ms << 10 | 10 random bits, so rowid order is time order.
    """
    CREATE TABLE utterance (
        id              INTEGER PRIMARY KEY,
        uid             TEXT NOT NULL UNIQUE,
        channel         TEXT NOT NULL,
        speaker_id      TEXT NOT NULL,
        speaker_name    TEXT NOT NULL,
        start_ms        INTEGER NOT NULL,
        end_ms          INTEGER NOT NULL,
        text            TEXT NOT NULL,
        norm            TEXT NOT NULL,
        words           TEXT NOT NULL DEFAULT '[]',
        model           TEXT NOT NULL,
        language        TEXT NOT NULL,
        clip            TEXT,
        burst_end_ms    INTEGER,
        committed_ms    INTEGER NOT NULL
    );
    CREATE INDEX utterance_channel ON utterance (channel, id);
    CREATE INDEX utterance_speaker ON utterance (speaker_id, id);
    CREATE VIRTUAL TABLE utterance_fts USING fts5 (
        norm, content = 'utterance', content_rowid = 'id', tokenize = 'trigram'
    );
    CREATE TRIGGER utterance_fts_insert AFTER INSERT ON utterance BEGIN
        INSERT INTO utterance_fts (rowid, norm) VALUES (new.id, new.norm);
    END;
    CREATE TRIGGER utterance_fts_delete AFTER DELETE ON utterance BEGIN
        INSERT INTO utterance_fts (utterance_fts, rowid, norm) VALUES ('delete', old.id, old.norm);
    END;
    CREATE TABLE utterance_gram (
        gram            TEXT NOT NULL,
        utterance_id    INTEGER NOT NULL REFERENCES utterance (id) ON DELETE CASCADE,
        PRIMARY KEY (gram, utterance_id)
    ) WITHOUT ROWID;
    CREATE INDEX utterance_gram_owner ON utterance_gram (utterance_id);
    CREATE TABLE gap (
        id              INTEGER PRIMARY KEY,
        uid             TEXT NOT NULL UNIQUE,
        channel         TEXT NOT NULL,
        speaker_id      TEXT NOT NULL,
        speaker_name    TEXT NOT NULL,
        start_ms        INTEGER NOT NULL,
        end_ms          INTEGER NOT NULL,
        reason          TEXT NOT NULL,
        detail          TEXT NOT NULL DEFAULT '',
        created_ms      INTEGER NOT NULL
    );
    CREATE INDEX gap_channel ON gap (channel, start_ms);
    """,
    # 3: accounts, channel assignments, web sessions, sign-in codes, login throttle, audit log
    # (self-contained: refers only to the channel table of migration 1)
    """
    CREATE TABLE users (
        name            TEXT PRIMARY KEY,
        display_name    TEXT NOT NULL,
        role            TEXT NOT NULL CHECK (role IN ('staff', 'supervisor', 'admin')),
        password_hash   TEXT,
        enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE channel_member (
        channel         TEXT NOT NULL REFERENCES channel(name) ON DELETE CASCADE,
        user_name       TEXT NOT NULL REFERENCES users(name),
        PRIMARY KEY (channel, user_name)
    ) WITHOUT ROWID;
    CREATE INDEX channel_member_user ON channel_member(user_name);
    CREATE TABLE channel_supervisor (
        channel         TEXT NOT NULL REFERENCES channel(name) ON DELETE CASCADE,
        user_name       TEXT NOT NULL REFERENCES users(name),
        PRIMARY KEY (channel, user_name)
    ) WITHOUT ROWID;
    CREATE INDEX channel_supervisor_user ON channel_supervisor(user_name);
    CREATE TABLE directory_revision (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        n               INTEGER NOT NULL
    );
    INSERT INTO directory_revision (id, n) VALUES (1, 0);
    CREATE TRIGGER users_revision_insert AFTER INSERT ON users
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TRIGGER users_revision_update AFTER UPDATE ON users
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TRIGGER member_revision_insert AFTER INSERT ON channel_member
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TRIGGER member_revision_delete AFTER DELETE ON channel_member
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TRIGGER supervisor_revision_insert AFTER INSERT ON channel_supervisor
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TRIGGER supervisor_revision_delete AFTER DELETE ON channel_supervisor
        BEGIN UPDATE directory_revision SET n = n + 1; END;
    CREATE TABLE web_session (
        id_hash         TEXT PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name),
        csrf            TEXT NOT NULL,
        via             TEXT NOT NULL,
        address         TEXT NOT NULL,
        created_at      REAL NOT NULL,
        expires_at      REAL NOT NULL,
        revoked         INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE INDEX web_session_user ON web_session(user_name);
    CREATE TABLE signin_code (
        code_hash       TEXT PRIMARY KEY,
        user_name       TEXT NOT NULL REFERENCES users(name),
        created_by      TEXT NOT NULL,
        created_at      REAL NOT NULL,
        expires_at      REAL NOT NULL,
        used_at         REAL
    ) WITHOUT ROWID;
    CREATE TABLE login_throttle (
        key             TEXT PRIMARY KEY,
        failures        INTEGER NOT NULL,
        last_failure    REAL NOT NULL,
        locked_until    REAL NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
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
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    """,
    # 4: the 1-2 character side index becomes a contentless FTS5 table (detail=none) whose
    # tokens are the hex of each distinct unigram/bigram (calllog/normalize.py gram_tokens):
    # compressed rowid lists instead of a (gram, rowid) b-tree and its owner index — about 8x
    # smaller, the log about 3x faster to build, same look-ups (README benchmark). Deletes give
    # the same tokens back (SqliteCallLog.delete_in). Existing grams are carried over as they are.
    """
    CREATE VIRTUAL TABLE utterance_grams USING fts5 (
        grams, content = '', detail = none, columnsize = 0, tokenize = 'unicode61'
    );
    INSERT INTO utterance_grams (rowid, grams)
        SELECT utterance_id, group_concat(hex(gram), ' ') FROM utterance_gram
        GROUP BY utterance_id;
    DROP TABLE utterance_gram;
    """,
    # 5: the commit event sequence: one row per committed utterance (later alerts and
    # announcements), written in the commit's own transaction whichever path committed it (the
    # live link or the spool catch-up). Features that react to commits read it after the last
    # seq they saw (calllog CallLog.events_after); AUTOINCREMENT never reuses a seq. The
    # PostgreSQL backend maps it to a sequence and LISTEN/NOTIFY.
    """
    CREATE TABLE commit_event (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT NOT NULL,
        ref             TEXT NOT NULL,
        channel         TEXT NOT NULL,
        created_ms      INTEGER NOT NULL
    );
    """,
    # 6: call-log row kinds (the console issue: speech, all_call, direct, announcement,
    # emergency) and the broadcast a row belongs to (one row per reached channel, sharing one
    # clip; uid ``<burst_id>:<channel>``); spoken announcements, the channels each reached and
    # who heard it there (a member with connected media for >= 90 % of it).
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
        seconds         REAL NOT NULL DEFAULT 0,
        clip            TEXT,
        created_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX announcement_created ON announcement (created_ms);
    CREATE TABLE announcement_target (
        announcement_id TEXT NOT NULL REFERENCES announcement (id) ON DELETE CASCADE,
        channel         TEXT NOT NULL,
        status          TEXT NOT NULL,
        start_ms        INTEGER,
        end_ms          INTEGER,
        PRIMARY KEY (announcement_id, channel)
    ) WITHOUT ROWID;
    CREATE TABLE announcement_heard (
        announcement_id TEXT NOT NULL REFERENCES announcement (id) ON DELETE CASCADE,
        channel         TEXT NOT NULL,
        user_name       TEXT NOT NULL,
        heard           INTEGER NOT NULL CHECK (heard IN (0, 1)),
        fraction        REAL NOT NULL,
        PRIMARY KEY (announcement_id, channel, user_name)
    ) WITHOUT ROWID;
    """,
    # 7: a direct talk's target (the console issue: ``kind = 'direct'`` rows name the person
    # talked to; readable by supervisors of the channel and the two parties, never replayed)
    """
    ALTER TABLE utterance ADD COLUMN target_sub TEXT;
    """,
    # 8: alerts (voice_server/alerts/store.py): one row per alert whatever its kind; ``dedupe``
    # is unique while set (one open emergency per user, one open transcription alert, one
    # keyword alert per utterance and keyword, for ever); the alert event sequence every
    # process's dashboard feed reads; keyword lists (scope '' = the whole deployment, else a
    # channel); named cursors (the keyword matcher's place in the commit event sequence).
    """
    CREATE TABLE alert (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL CHECK (kind IN ('emergency', 'keyword', 'transcription')),
        channel         TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('raised', 'acknowledged', 'resolved')),
        dedupe          TEXT UNIQUE,
        raised_ms       INTEGER NOT NULL,
        raised_by       TEXT NOT NULL,
        subject         TEXT NOT NULL DEFAULT '',
        subject_name    TEXT NOT NULL DEFAULT '',
        keyword         TEXT NOT NULL DEFAULT '',
        utterance       TEXT NOT NULL DEFAULT '',
        detail          TEXT NOT NULL DEFAULT '{}',
        acked_ms        INTEGER,
        acked_by        TEXT NOT NULL DEFAULT '',
        acked_by_name   TEXT NOT NULL DEFAULT '',
        resolved_ms     INTEGER,
        resolved_by     TEXT NOT NULL DEFAULT '',
        resolved_by_name TEXT NOT NULL DEFAULT '',
        resolution      TEXT NOT NULL DEFAULT '',
        note            TEXT NOT NULL DEFAULT '',
        escalated       INTEGER NOT NULL DEFAULT 0,
        updated_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX alert_raised ON alert (raised_ms);
    CREATE INDEX alert_channel ON alert (channel, raised_ms);
    CREATE INDEX alert_open ON alert (state) WHERE state != 'resolved';
    CREATE TABLE alert_event (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_id        TEXT NOT NULL,
        created_ms      INTEGER NOT NULL
    );
    CREATE TABLE alert_keyword (
        scope           TEXT NOT NULL,
        norm            TEXT NOT NULL,
        text            TEXT NOT NULL,
        position        INTEGER NOT NULL,
        PRIMARY KEY (scope, norm)
    ) WITHOUT ROWID;
    CREATE TABLE alert_cursor (
        name            TEXT PRIMARY KEY,
        seq             INTEGER NOT NULL
    ) WITHOUT ROWID;
    """,
    # 9: signed webhooks (voice_server/webhooks/store.py): endpoints (their whsec_ secret, the
    # event types they take, an optional CA file) and one delivery row per (endpoint, event):
    # queued (next_at_ms: when it is due, a claimed one is pushed on by a lease), delivered, or
    # dead (retries exhausted, or the queue was full: the dead-letter list admins redeliver).
    """
    CREATE TABLE webhook_endpoint (
        id              TEXT PRIMARY KEY,
        url             TEXT NOT NULL,
        events          TEXT NOT NULL,
        secret          TEXT NOT NULL,
        ca_file         TEXT,
        enabled         INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
        created_by      TEXT NOT NULL,
        created_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE webhook_delivery (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
        msg_id          TEXT NOT NULL,
        event_type      TEXT NOT NULL,
        body            TEXT NOT NULL,
        state           TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'dead')),
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_at_ms      INTEGER NOT NULL,
        last_status     INTEGER,
        last_error      TEXT NOT NULL DEFAULT '',
        created_ms      INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL,
        UNIQUE (endpoint_id, msg_id)
    );
    CREATE INDEX webhook_delivery_due ON webhook_delivery (state, next_at_ms);
    """,
    # 10: scheduled announcements (announce/schedule_store.py): the request and its schedule,
    # when it fires next; each fire claimed once per deployment by its primary key
    """
    CREATE TABLE announcement_schedule (
        id              TEXT PRIMARY KEY,
        author          TEXT NOT NULL,
        author_name     TEXT NOT NULL,
        request         TEXT NOT NULL,
        schedule        TEXT NOT NULL,
        next_ms         INTEGER,
        status          TEXT NOT NULL,
        created_ms      INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX announcement_schedule_next ON announcement_schedule (status, next_ms);
    CREATE TABLE announcement_fire (
        schedule_id     TEXT NOT NULL REFERENCES announcement_schedule (id) ON DELETE CASCADE,
        due_ms          INTEGER NOT NULL,
        status          TEXT NOT NULL,
        announcement_id TEXT,
        error           TEXT NOT NULL DEFAULT '',
        claimed_ms      INTEGER NOT NULL,
        PRIMARY KEY (schedule_id, due_ms)
    ) WITHOUT ROWID;
    """,
    # 11: the transcription job queue (voice_server/calllog/jobqueue.py): a job per ended burst,
    # claimed under a lease (worker, attempt, lease_until_ms); the commit is fenced on all three
    # and bumps ``commits`` (a counter that proves no burst passed the fence twice); done jobs
    # are swept after a while.
    """
    CREATE TABLE transcription_job (
        id              TEXT PRIMARY KEY,
        state           TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'done')),
        ready_ms        INTEGER NOT NULL,
        worker          TEXT NOT NULL DEFAULT '',
        attempt         INTEGER NOT NULL DEFAULT 0,
        lease_until_ms  INTEGER NOT NULL DEFAULT 0,
        commits         INTEGER NOT NULL DEFAULT 0,
        done_ms         INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX transcription_job_ready ON transcription_job (state, ready_ms);
    """,
]


class DatabaseError(Exception):
    """The database cannot be opened or migrated."""


def connect(path: Path) -> sqlite3.Connection:
    """Open a connection with the project's settings (WAL, foreign keys, busy timeout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot open database {path}: {exc}") from None
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations in one transaction each; return the schema version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"database schema version {version} is newer than this program ({len(MIGRATIONS)})"
        )
    for index in range(version, len(MIGRATIONS)):
        try:
            conn.execute("BEGIN IMMEDIATE")
            # Re-check inside the lock: another process may have migrated meanwhile.
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if current > index:
                conn.execute("COMMIT")
                continue
            for statement in _statements(MIGRATIONS[index]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {index + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise DatabaseError(f"migration {index + 1} failed: {exc}") from None
    return len(MIGRATIONS)


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


class Database:
    """One database file; a connection per thread, opened lazily and migrated once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._migrated = False
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            with self._lock:
                if not self._migrated:
                    migrate(conn)
                    self._migrated = True
            self._local.conn = conn
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        yield self._conn()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
