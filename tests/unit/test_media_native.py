"""The native fan-out's build and load rules (its results are compared in test_media_fanout)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from voice_server.media import native


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    native.reset_for_tests()
    yield
    native.reset_for_tests()


def test_built_once_into_a_private_cache_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (shutil.which("cc") or shutil.which("gcc")):
        pytest.skip("no C compiler here")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native.load() is not None
    cache = tmp_path / "voice-server"
    assert cache.stat().st_mode & 0o777 == 0o700
    built = list(cache.glob("fan-*.so"))
    assert len(built) == 1 and built[0].stat().st_mode & 0o022 == 0
    mtime = built[0].stat().st_mtime_ns
    native.reset_for_tests()
    assert native.load() is not None  # another process: loads what is there, no rebuild
    assert built[0].stat().st_mtime_ns == mtime


def test_switched_off_or_without_a_compiler_forwarding_stays_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("VOICE_NATIVE", "0")
    assert native.load() is None
    native.reset_for_tests()
    monkeypatch.delenv("VOICE_NATIVE")
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert native.load() is None
    assert not list((tmp_path / "voice-server").glob("fan-*.so"))


def test_a_cache_others_can_write_to_is_never_loaded_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "voice-server"
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)  # someone could have put a library there
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native.load() is None
    assert not list(cache.glob("fan-*.so"))
