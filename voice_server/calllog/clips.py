"""Where clips are read from by any node: the ``ClipStore`` interface.

- :class:`FsClipStore` (SQLite, the default): the data directory, as before: a clip is the file
  at its clip path, or its spool file until the sidecar has moved it. ``put`` keeps nothing
  (the spool writer has the file already).
- :class:`PgClipStore` (PostgreSQL): a ``clip`` table (``bytea``) keyed by the clip path (and
  the burst id). The server uploads each ended burst right after its fsync, off the spool
  writer's thread, retrying every second what failed (``voice_spool_clip_upload_seconds``:
  fsync to upload; an upload waits at most :data:`PUT_LOCK_TIMEOUT` for a lock, then is
  retried), so another node's dashboard plays it, and a queue worker on another machine
  transcribes it, even when this node is gone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from voice_server.calllog.burst import DONE, SPOOL_DIR

if TYPE_CHECKING:
    from voice_server.store.pg import PgDatabase

__all__ = ["PUT_LOCK_TIMEOUT", "ClipStore", "FsClipStore", "PgClipStore"]

PUT_LOCK_TIMEOUT = "2s"  # a locked clip table fails the upload (retried) rather than hold it


class ClipStore(Protocol):
    def put(self, clip: str, data: bytes) -> None:
        """Store an ended burst's Ogg/Opus bytes under its clip path (idempotent)."""
        ...

    def get(self, clip: str, burst_id: str) -> bytes | None:
        """The clip's bytes, or None when this store does not have it."""
        ...

    def of_burst(self, burst_id: str) -> bytes | None:
        """An ended burst's bytes by its id (a queue worker without the spool file)."""
        ...

    def lacking(self, burst_ids: list[str]) -> set[str]:
        """Those of ``burst_ids`` whose bytes another node could not read from this store."""
        ...


class FsClipStore:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def put(self, clip: str, data: bytes) -> None:
        return None

    def of_burst(self, burst_id: str) -> bytes | None:
        return None  # the spool is read directly

    def lacking(self, burst_ids: list[str]) -> set[str]:
        return set()  # nothing is uploaded: every reader shares the data directory

    def get(self, clip: str, burst_id: str) -> bytes | None:
        final = self.data_dir / clip  # again after the spool: the file may move meanwhile
        for path in (final, self.data_dir / SPOOL_DIR / Path(clip).name, final):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
        return None


class PgClipStore:
    def __init__(self, db: PgDatabase, local: FsClipStore | None = None) -> None:
        self._db = db
        self.local = local  # this node's files first (no round trip for its own clips)

    def put(self, clip: str, data: bytes) -> None:
        burst_id = Path(clip).name.removesuffix(DONE)
        with self._db.transaction() as conn:
            conn.execute(f"SET LOCAL lock_timeout = '{PUT_LOCK_TIMEOUT}'")
            conn.execute(
                "INSERT INTO clip (path, burst, data, created_ms) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (clip, burst_id, data, time.time_ns() // 1_000_000),
            )

    def of_burst(self, burst_id: str) -> bytes | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT data FROM clip WHERE burst = %s", (burst_id,)).fetchone()
        return bytes(row[0]) if row else None

    def lacking(self, burst_ids: list[str]) -> set[str]:
        with self._db.connection() as conn:
            rows = conn.execute(
                "SELECT burst FROM clip WHERE burst = ANY(%s::text[])", (burst_ids,)
            ).fetchall()
        return set(burst_ids) - {r[0] for r in rows}

    def get(self, clip: str, burst_id: str) -> bytes | None:
        if self.local is not None:
            got = self.local.get(clip, burst_id)
            if got is not None:
                return got
        with self._db.connection() as conn:
            row = conn.execute("SELECT data FROM clip WHERE path = %s", (clip,)).fetchone()
        return bytes(row[0]) if row else None
