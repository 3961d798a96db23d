"""What the retention purge (:mod:`.purge`) asks of the database, and its SQLite answer.

The purge itself (cutoffs, batches, files, audit rows) is the same for every backend; a
:class:`PurgeStore` reads the channels' rules, counts and deletes expired rows and scrubs what is
left of them. SQLite: deletes with ``secure_delete``, both FTS5 indexes optimized and the WAL
truncated (:func:`scrub`). PostgreSQL: :mod:`.purge_pg`.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Protocol

from voice_server.calllog.retention import Rule

__all__ = ["FTS_TABLES", "PurgeStore", "SqlitePurgeStore", "scrub"]

FTS_TABLES = ("utterance_fts", "utterance_grams")


class PurgeStore(Protocol):
    def rules(self) -> list[Rule]: ...

    def count(self, channel: str, before_rowid: int, before_ms: int) -> tuple[int, int]:
        """Utterances and gaps of ``channel`` older than the cutoff."""
        ...

    def oldest(self, channel: str, before_rowid: int, limit: int) -> list[tuple[str, str | None]]:
        """Burst id and clip of the oldest expired utterances, at most ``limit``."""
        ...

    def delete(self, burst_ids: list[str]) -> int:
        """Delete these utterances with their index entries (one transaction)."""
        ...

    def delete_gaps(self, channel: str, before_ms: int) -> int: ...

    def clip_in_use(self, clip: str) -> bool:
        """Some utterance still plays this clip (a broadcast's shared one)."""
        ...

    def scrub(self) -> bool:
        """Make the deleted text unreadable where the backend can; True when its log (SQLite's
        WAL) was emptied too."""
        ...

    def close(self) -> None: ...


_EXPIRED = "FROM utterance INDEXED BY utterance_channel WHERE channel = ? AND id < ?"


class SqlitePurgeStore:
    def __init__(self, path: Path) -> None:
        from voice_server.store.database import connect

        self._conn = connect(path)
        self._conn.execute("PRAGMA secure_delete=ON")

    def rules(self) -> list[Rule]:
        rows = self._conn.execute("SELECT name, retention_days, legal_hold FROM channel")
        return [Rule(r["name"], r["retention_days"], bool(r["legal_hold"])) for r in rows]

    def count(self, channel: str, before_rowid: int, before_ms: int) -> tuple[int, int]:
        utterances = self._conn.execute(
            f"SELECT count(*) {_EXPIRED}", (channel, before_rowid)
        ).fetchone()[0]
        gaps = self._conn.execute(
            "SELECT count(*) FROM gap WHERE channel = ? AND start_ms < ?", (channel, before_ms)
        ).fetchone()[0]
        return int(utterances), int(gaps)

    def oldest(self, channel: str, before_rowid: int, limit: int) -> list[tuple[str, str | None]]:
        rows = self._conn.execute(
            f"SELECT uid, clip {_EXPIRED} ORDER BY id LIMIT {int(limit)}", (channel, before_rowid)
        ).fetchall()
        return [(r["uid"], r["clip"]) for r in rows]

    def delete(self, burst_ids: list[str]) -> int:
        from voice_server.calllog.sqlite import SqliteCallLog

        self._conn.execute("BEGIN IMMEDIATE")
        try:
            removed = SqliteCallLog.delete_in(self._conn, burst_ids)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        return removed

    def delete_gaps(self, channel: str, before_ms: int) -> int:
        cur = self._conn.execute(
            "DELETE FROM gap WHERE channel = ? AND start_ms < ?", (channel, before_ms)
        )
        return int(cur.rowcount)

    def clip_in_use(self, clip: str) -> bool:
        return bool(
            self._conn.execute("SELECT 1 FROM utterance WHERE clip = ? LIMIT 1", (clip,)).fetchone()
        )

    def scrub(self) -> bool:
        return scrub(self._conn)

    def close(self) -> None:
        self._conn.close()


def scrub(conn: sqlite3.Connection, attempts: int = 20) -> bool:
    """Rewrite both FTS5 indexes without the deleted entries, then empty the WAL. True when the
    WAL was truncated (a long reader elsewhere can hold it; the next purge tries again)."""
    for table in FTS_TABLES:
        conn.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")
    for _ in range(attempts):
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0:
            return True
        time.sleep(0.1)
    return False
