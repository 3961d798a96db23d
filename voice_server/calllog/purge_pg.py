"""The retention purge's database side on PostgreSQL (see :mod:`.purge_store`).

Deleting a row removes it from both GIN indexes (they are the table's own) and its clip's
shared copy (the ``clip`` table) once no remaining row uses that clip. Scrubbing is
``VACUUM`` of the call-log tables: dead rows and index entries are freed for reuse. Unlike
SQLite's ``secure_delete``, PostgreSQL does not overwrite freed space, and its WAL (and any WAL
archive or replica) keeps the deleted text until recycled: :meth:`PgPurgeStore.scrub` returns
False (the report's ``wal_truncated``), and README "PostgreSQL" says so.
"""

from __future__ import annotations

from voice_server.calllog.retention import Rule
from voice_server.store.pg import PgDatabase

__all__ = ["PgPurgeStore"]

_EXPIRED = "FROM utterance WHERE channel = %s AND id < %s"


class PgPurgeStore:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def rules(self) -> list[Rule]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT name, retention_days, legal_hold FROM channel").fetchall()
        return [Rule(str(r[0]), r[1], bool(r[2])) for r in rows]

    def count(self, channel: str, before_rowid: int, before_ms: int) -> tuple[int, int]:
        with self._db.connection() as conn:
            row = conn.execute(
                f"SELECT (SELECT count(*) {_EXPIRED}), "
                "(SELECT count(*) FROM gap WHERE channel = %s AND start_ms < %s)",
                (channel, before_rowid, channel, before_ms),
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def oldest(self, channel: str, before_rowid: int, limit: int) -> list[tuple[str, str | None]]:
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT uid, clip {_EXPIRED} ORDER BY id LIMIT %s", (channel, before_rowid, limit)
            ).fetchall()
        return [(str(r[0]), r[1]) for r in rows]

    def delete(self, burst_ids: list[str]) -> int:
        """The rows, and their clips' shared copies (``clip``) that no remaining row uses."""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "DELETE FROM utterance WHERE uid = ANY(%s::text[]) RETURNING clip", (burst_ids,)
            ).fetchall()
            clips = sorted({r[0] for r in rows if r[0]})
            conn.execute(
                "DELETE FROM clip WHERE path = ANY(%s::text[]) "
                "AND NOT EXISTS (SELECT 1 FROM utterance u WHERE u.clip = clip.path)",
                (clips,),
            )
            return len(rows)

    def delete_gaps(self, channel: str, before_ms: int) -> int:
        with self._db.transaction() as conn:
            conn.execute(  # the shared copies of bursts that ended as gaps (no speech, …)
                "DELETE FROM clip WHERE burst IN (SELECT uid FROM gap "
                "WHERE channel = %s AND start_ms < %s)",
                (channel, before_ms),
            )
            cur = conn.execute(
                "DELETE FROM gap WHERE channel = %s AND start_ms < %s", (channel, before_ms)
            )
            return int(cur.rowcount)

    def clip_in_use(self, clip: str) -> bool:
        with self._db.connection() as conn:
            row = conn.execute("SELECT 1 FROM utterance WHERE clip = %s LIMIT 1", (clip,))
            return row.fetchone() is not None

    def scrub(self) -> bool:
        with self._db.connection() as conn:
            conn.execute("VACUUM utterance, gap, clip")
        return False

    def close(self) -> None:
        """The connections belong to the database handle."""
