"""Where a committed clip's bytes are found on this node (`FsClipStore`): at its clip path once
the sidecar has moved it, before that in the spool under its burst's name, for a row of an
all-call (``<burst>:<channel>``) as for a channel's own burst."""

from __future__ import annotations

from pathlib import Path

from voice_server.calllog.burst import DONE, SHARED_CLIPS, SPOOL_DIR
from voice_server.calllog.clips import FsClipStore

BURST = "b-20261206-0001"


def test_an_all_call_rows_clip_is_read_from_the_spool_before_it_is_moved(tmp_path: Path) -> None:
    clip = f"{SHARED_CLIPS}/{BURST}{DONE}"
    (tmp_path / SPOOL_DIR).mkdir(parents=True)
    (tmp_path / SPOOL_DIR / f"{BURST}{DONE}").write_bytes(b"OggS spooled")
    store = FsClipStore(tmp_path)
    for row in (f"{BURST}:ops", f"{BURST}:hq"):
        assert store.get(clip, row) == b"OggS spooled"


def test_a_moved_clip_is_read_at_its_clip_path_and_a_missing_one_is_none(tmp_path: Path) -> None:
    clip = f"{SHARED_CLIPS}/{BURST}{DONE}"
    store = FsClipStore(tmp_path)
    assert store.get(clip, f"{BURST}:ops") is None
    (tmp_path / clip).parent.mkdir(parents=True)
    (tmp_path / clip).write_bytes(b"OggS moved")
    assert store.get(clip, f"{BURST}:ops") == b"OggS moved"
