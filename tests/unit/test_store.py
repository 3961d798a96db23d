import os
import stat
from pathlib import Path

import pytest

from voice_server.identity.keys import load_or_create_key
from voice_server.store.channels import ChannelError, ChannelStore
from voice_server.store.database import MIGRATIONS, Database, connect, migrate


def test_signing_key_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    assert len(key) == 32
    assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key


def test_a_key_readable_by_others_is_tightened(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    os.chmod(tmp_path / "signing.key", 0o644)
    assert load_or_create_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / "signing.key").stat().st_mode) == 0o600


def test_migrations_run_once_and_record_the_version(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite")
    assert migrate(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_channels_keep_japanese_display_names(tmp_path: Path) -> None:
    store = ChannelStore(Database(tmp_path / "db.sqlite"))
    store.add("shelter-a", "避難所A")
    got = store.get("shelter-a")
    assert got is not None and got.display_name == "避難所A" and got.created_at
    assert [c.name for c in store.list()] == ["shelter-a"]


def test_duplicate_bad_and_missing_channels_are_clear_errors(tmp_path: Path) -> None:
    store = ChannelStore(Database(tmp_path / "db.sqlite"))
    store.add("ops")
    with pytest.raises(ChannelError, match="already exists"):
        store.add("ops")
    with pytest.raises(ChannelError, match="invalid channel name"):
        store.add("a b")
    with pytest.raises(ChannelError, match="no channel"):
        store.remove("nope")
    store.remove("ops")
    assert store.get("ops") is None
