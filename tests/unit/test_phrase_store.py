"""The deployment's ASR phrase list on both backends: saved and loaded cleaned, shared by every
process of the deployment (on PostgreSQL another node, with its own data directory, sees it),
and on PostgreSQL the data directory's old file is read until a list is saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import BACKENDS, database
from voice_server.transcribe import phrases as phrase_lists
from voice_server.transcribe.phrase_store import FilePhrases, PgPhrases, open_store


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_phrase_list_is_saved_cleaned_and_shared(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    phrase_lists.save(tmp_path, ["旧リスト"])  # a file from before (SQLite's own store)
    with database(backend, tmp_path, request) as db:
        store = open_store(db, tmp_path)
        assert isinstance(store, FilePhrases if backend == "sqlite" else PgPhrases)
        assert store.load() == ["旧リスト"]
        assert store.save([" 中央公民館 ", "田中", "田中", ""]) == ["中央公民館", "田中"]
        with pytest.raises(ValueError, match="at most"):
            store.save(["x" * 41])
        elsewhere = tmp_path / "other-node"
        elsewhere.mkdir()
        other = open_store(db, elsewhere if backend == "postgres" else tmp_path)
        assert other.load() == ["中央公民館", "田中"]
        if backend == "postgres":
            assert phrase_lists.load(tmp_path) == ["旧リスト"]  # the file is left alone
            assert other.save([]) == [] and store.load() == []  # an empty list is a list
