"""Where the deployment's ASR phrase list is kept (:mod:`voice_server.transcribe.phrases` says
what each engine does with it):

- :class:`FilePhrases` (SQLite): the data directory's ``asr_phrases.json``;
- :class:`PgPhrases` (PostgreSQL): one row of the ``asr_phrases`` table (schema migration 11),
  shared by every node and worker on any machine. A deployment moved from SQLite without ``db
  copy`` (which copies the file into the row) still has its file: it is read until a list is
  saved.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from voice_server.transcribe.phrases import clean, load, save

if TYPE_CHECKING:
    from voice_server.store.database import Database
    from voice_server.store.pg import PgDatabase

__all__ = ["FilePhrases", "PgPhrases", "PhraseStore", "open_store"]


class PhraseStore(Protocol):
    def load(self) -> list[str]:
        """The deployment's list ([] when none)."""
        ...

    def save(self, terms: Iterable[str]) -> list[str]:
        """Replace the list (cleaned; ValueError past the limits); the list saved."""
        ...


def open_store(db: Database, data_dir: Path) -> PhraseStore:
    """The deployment's list: the data directory's file, or on PostgreSQL its shared row."""
    from voice_server.store.pgcompat import PgCompatDatabase

    if isinstance(db, PgCompatDatabase):
        return PgPhrases(db.pg, data_dir)
    return FilePhrases(data_dir)


class FilePhrases:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def load(self) -> list[str]:
        return load(self.data_dir)

    def save(self, terms: Iterable[str]) -> list[str]:
        return save(self.data_dir, terms)


class PgPhrases:
    def __init__(self, db: PgDatabase, data_dir: Path | None = None) -> None:
        self._db = db
        self.data_dir = data_dir  # the legacy file, read while the table has no list

    def load(self) -> list[str]:
        with self._db.connection() as conn:
            row = conn.execute("SELECT phrases FROM asr_phrases WHERE id = 1").fetchone()
        if row is None:
            return load(self.data_dir) if self.data_dir is not None else []
        try:
            data = json.loads(row[0])
            return clean(p for p in data if isinstance(p, str))
        except (ValueError, TypeError):
            return []

    def save(self, terms: Iterable[str]) -> list[str]:
        phrases = clean(terms)
        with self._db.connection() as conn:
            conn.execute(
                "INSERT INTO asr_phrases (id, phrases, updated_ms) VALUES (1, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET phrases = EXCLUDED.phrases, "
                "updated_ms = EXCLUDED.updated_ms",
                (json.dumps(phrases, ensure_ascii=False), time.time_ns() // 1_000_000),
            )
        return phrases
