"""The console's bursts in the call log (fake recognizer, real store and spool files): an
all-call is one burst, one shared clip and one row per reached channel (uid ``<id>:<channel>``,
the burst id as broadcast id, ``kind = all_call``); a direct talk is one row naming its target;
the catch-up path commits and moves them like any burst."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BACKENDS, call_log
from tests.transcribe_helpers import FakeFactory, opus_tone, rtp
from voice_server.calllog.burst import SHARED_CLIPS, BurstMeta, clip_path, rows_of
from voice_server.calllog.model import Utterance, new_burst_id
from voice_server.calllog.ogg import OggOpusWriter
from voice_server.calllog.store import CallLog
from voice_server.transcribe.catchup import CatchUp
from voice_server.transcribe.engine import Engine
from voice_server.transcribe.packets import opus_samples

START = 1_780_000_000_000


def all_call(start: int = START) -> BurstMeta:
    return BurstMeta(
        new_burst_id(start), "ops", "boss", "上司", "s1", start, "all_call", ("hq", "yard")
    )


def test_burst_tags_carry_kind_reached_channels_and_target() -> None:
    meta = all_call()
    assert BurstMeta.from_tags(meta.tags()) == meta
    direct = BurstMeta(
        new_burst_id(START), "ops", "boss", "上司", "s1", START, "direct", (), "sato"
    )
    assert BurstMeta.from_tags(direct.tags()) == direct
    plain = BurstMeta(new_burst_id(START), "ops", "sato", "佐藤", "s2", START)
    assert "VOICE_KIND" not in plain.tags() and BurstMeta.from_tags(plain.tags()) == plain
    assert clip_path(meta) == f"{SHARED_CLIPS}/{meta.id}.ogg"
    assert clip_path(plain).startswith("clips/ops/")


def test_rows_of_a_broadcast_and_of_a_direct_talk() -> None:
    meta = all_call()
    base = Utterance(meta.id, "ops", "boss", "上司", START, START + 1000, "全員へ", clip="c")
    rows = rows_of(meta, base)
    assert [r.id for r in rows] == [f"{meta.id}:{c}" for c in ("ops", "hq", "yard")]
    assert {r.broadcast_id for r in rows} == {meta.id} and {r.clip for r in rows} == {"c"}
    assert {r.kind for r in rows} == {"all_call"} and [r.channel for r in rows] == [
        "ops", "hq", "yard"
    ]  # fmt: skip
    direct = BurstMeta(meta.id, "ops", "boss", "上司", "s1", START, "direct", (), "sato")
    (row,) = rows_of(direct, base)
    assert (row.id, row.kind, row.target_sub, row.broadcast_id) == (
        meta.id, "direct", "sato", None
    )  # fmt: skip


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CallLog]:
    with call_log(request.param, tmp_path, request) as got:
        yield got


def test_a_live_all_call_burst_commits_one_row_per_channel_once(
    tmp_path: Path, log: CallLog
) -> None:
    eng = Engine(FakeFactory(), log, workers=1)  # type: ignore[arg-type]
    meta = all_call()
    for attempt in range(2):  # the second time (a spool replay): already done, nothing added
        job = eng.job(meta, live=True)
        assert job is not None
        for i, p in enumerate(opus_tone(1.0)):
            eng.push_rtp(job, rtp(i, p))
        eng.end(job)
        assert job.finished.wait(10)
        assert (job.committed is not None) == (attempt == 0)
    eng.close()
    rows = [log.get(f"{meta.id}:{c}") for c in ("ops", "hq", "yard")]
    assert all(r is not None and r.kind == "all_call" for r in rows)
    assert {r.clip for r in rows if r} == {f"{SHARED_CLIPS}/{meta.id}.ogg"}
    assert log.get(meta.id) is None and log.done([meta.id]) == {meta.id}
    assert eng.counters.already_done == 1


def test_the_catch_up_commits_an_all_call_from_its_spool_file_and_moves_its_clip(
    tmp_path: Path, log: CallLog
) -> None:
    eng = Engine(FakeFactory(), log, workers=1)  # type: ignore[arg-type]
    meta = all_call()
    spool = tmp_path / "spool" / f"{meta.id}.ogg"
    spool.parent.mkdir()
    with spool.open("wb") as fh:
        writer = OggOpusWriter(fh.write, serial=7, tags=meta.tags())
        for p in opus_tone(1.0):
            writer.add(p, opus_samples(p))
        writer.close()
    catchup = CatchUp(tmp_path, eng, log)
    catchup.step()  # transcribes it
    assert catchup.current is not None and catchup.current.finished.wait(10)
    catchup.step()  # moves it: one shared clip for the three rows
    eng.close()
    assert not spool.exists()
    assert (tmp_path / SHARED_CLIPS / f"{meta.id}.ogg").is_file()
    assert log.done([meta.id]) == {meta.id}
    row = log.get(f"{meta.id}:yard")
    assert row is not None and row.broadcast_id == meta.id and row.speaker_name == "上司"
