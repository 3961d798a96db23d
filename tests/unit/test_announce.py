"""Announcements: request checks, "who heard it", Open JTalk's readings and the audio, call-log
rows of a broadcast (uid, kind, shared clip) and the purge of a shared clip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.backends import BACKENDS, database
from tests.calllog_seed import write_clip
from voice_server.announce.heard import HEARD_FRACTION, Tally, not_heard
from voice_server.announce.request import MAX_TEXT, AnnounceError, parse, targets
from voice_server.announce.store import Announcement, AnnouncementStore, Target
from voice_server.audit.log import AuditLog
from voice_server.backends.seam import open_call_log, open_clip_store, purge_store
from voice_server.calllog.model import UID_RE, Utterance, new_burst_id, rowid_of
from voice_server.calllog.purge import Purger
from voice_server.calllog.retention import DAY_MS
from voice_server.store.channels import ChannelStore
from voice_server.web.policy import Action, Actor, Scope, decide

NOW = 1_790_000_000_000


def code_of(body: object) -> str:
    with pytest.raises(AnnounceError) as caught:
        parse(body)
    return caught.value.code


def test_a_request_is_checked_before_anything_happens() -> None:
    req = parse({"text": "  避難所Aは\n17時に閉鎖します ", "channels": ["a", "b", "a"]})
    assert req.text == "避難所Aは 17時に閉鎖します" and req.channels == ("a", "b")
    assert (req.urgent, req.repeat, req.language) == (False, 1, "ja")
    assert parse({"text": "x"}).channels is None
    assert code_of({"text": ""}) == "empty_text"
    assert code_of({"text": " \n "}) == "empty_text"
    assert code_of({"text": "あ" * (MAX_TEXT + 1)}) == "text_too_long"
    assert code_of({"text": "!!! ……"}) == "unspeakable_text"
    assert code_of({"text": "a\x00b"}) == "bad_text"
    assert code_of({"text": 5}) == "bad_text"
    assert code_of({"text": "x", "channels": []}) == "empty_target"
    assert code_of({"text": "x", "channels": "a"}) == "bad_channels"
    assert code_of({"text": "x", "repeat": 9}) == "bad_repeat"
    assert code_of({"text": "x", "repeat": True}) == "bad_repeat"
    assert code_of({"text": "x", "urgent": "yes"}) == "bad_request"
    assert code_of({"text": "x", "language": "fr"}) == "language_unavailable"
    assert code_of({"text": "x", "schedule": {}}) == "bad_request"
    assert code_of(["x"]) == "bad_request"


def test_targets_are_the_supervised_channels_asked_for_or_all_of_them() -> None:
    known = ["a", "b", "c"]
    assert targets(parse({"text": "x"}), {"a", "c"}, known) == ("a", "c")
    assert targets(parse({"text": "x", "channels": ["c"]}), {"a", "c"}, known) == ("c",)
    with pytest.raises(AnnounceError) as caught:
        targets(parse({"text": "x", "channels": ["a", "b"]}), {"a"}, known)
    assert (caught.value.code, caught.value.status) == ("channel_not_supervised", 403)
    with pytest.raises(AnnounceError) as caught:
        targets(parse({"text": "x", "channels": ["zz"]}), {"a"}, known)
    assert caught.value.code == "no_such_channel"
    with pytest.raises(AnnounceError) as caught:
        targets(parse({"text": "x"}), set(), known)
    assert caught.value.code == "empty_target"


def test_announce_and_replay_in_the_access_table() -> None:
    from voice_server.identity.tokens import Role

    def actor(role: Role) -> Actor:
        return Actor("u", "U", role, Scope.of(["a", "b"]), Scope.of(["a"]), "session")

    assert decide(actor(Role.SUPERVISOR), Action.ANNOUNCE, channel="a")
    assert not decide(actor(Role.SUPERVISOR), Action.ANNOUNCE, channel="b")
    assert decide(actor(Role.ADMIN), Action.ANNOUNCE, channel="a")
    assert not decide(actor(Role.ADMIN), Action.ANNOUNCE, channel="b")  # admins where assigned
    assert not decide(actor(Role.STAFF), Action.ANNOUNCE, channel="a")
    assert decide(actor(Role.STAFF), Action.REPLAY, channel="b")
    assert not decide(actor(Role.STAFF), Action.REPLAY, channel="c")


def test_who_heard_it_is_ninety_percent_of_the_samples_over_all_devices() -> None:
    tally = Tally()
    for k in range(20):
        present = {"ann", "bob"} if k < 19 else {"ann"}  # bob missed one sample in 20: 95 %
        if k < 17:
            present.add("cy")  # cy: 85 %
        tally.sample(present)
    fractions = tally.fractions(["ann", "bob", "cy", "dee"])
    assert fractions == {"ann": 1.0, "bob": 0.95, "cy": 0.85, "dee": 0.0}
    heard = {u: f >= HEARD_FRACTION for u, f in fractions.items()}
    assert not_heard(["ann", "bob", "cy", "dee"], heard) == ["cy", "dee"]
    assert Tally().fractions(["x"]) == {"x": 0.0}


def test_open_jtalk_reads_times_and_letters() -> None:
    openjtalk = pytest.importorskip("voice_server.tts.openjtalk")
    if not openjtalk.available():
        pytest.skip("pyopenjtalk-plus is not installed")
    assert openjtalk.kana("午後2時30分") == "ゴゴニジサンジュップン"
    assert openjtalk.kana("17時") == "ジューシチジ"
    assert openjtalk.kana("避難所A") == "ヒナンジョＡ"  # letters pass through its kana...
    assert openjtalk.phonemes("避難所A") == "h i n a N j o e i"  # ... and are read "ei"
    assert openjtalk.phonemes("!!!") == ""  # nothing to read aloud


def test_the_announcement_audio_is_speech_of_the_right_length() -> None:
    pytest.importorskip("pyopenjtalk")
    from voice_server.announce import speech
    from voice_server.announce.request import AnnounceError as Refused

    pcm = speech.render("避難所Aは17時に閉鎖します", repeat=2)
    seconds = len(pcm) / 2 / speech.RATE
    once = len(speech.render("避難所Aは17時に閉鎖します")) / 2 / speech.RATE
    assert 2.0 < once < 6.0  # 14 characters, lead and tail included
    assert abs(seconds - (2 * once - speech.LEAD_SECONDS - speech.TAIL_SECONDS + 1.0)) < 0.05
    levels = speech.levels(pcm)
    voiced = sum(1 for level in levels if level <= 40) / len(levels)
    assert 0.4 < voiced < 0.95  # speech with pauses, lead, gap and tail
    assert min(levels) < 25  # loud enough (above -25 dBov at its peak)
    clip = speech.encode(pcm)
    assert len(clip.frames) == len(clip.levels) == -(-len(pcm) // (2 * speech.FRAME_SAMPLES))
    assert max(clip.levels) <= speech.HELD_DBOV  # held voiced: pauses never end the burst
    with pytest.raises(Refused) as caught:
        speech.render("！！！")
    assert caught.value.code == "unspeakable_text"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_broadcast_has_a_row_per_channel_and_its_shared_clip_outlives_the_first_purge(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with database(backend, tmp_path, request) as db:
        channels = ChannelStore(db)
        for name, days, hold in (("a", 30, False), ("b", 30, True)):
            channels.add(name)
            with db.transaction() as conn:
                channels.update(conn, name, display_name=name, retention_days=days, legal_hold=hold)
        log = open_call_log(getattr(db, "pg_url", None), tmp_path, db)
        clips = open_clip_store(db, tmp_path)
        start = NOW - 40 * DAY_MS
        bid = new_burst_id(start)
        clip = f"clips/_shared/{bid}.ogg"
        write_clip(tmp_path / clip)
        clips.put(clip, (tmp_path / clip).read_bytes())
        for ch in ("a", "b"):
            u = Utterance(
                f"{bid}:{ch}", ch, "boss", "Boss", start, start + 3000, "閉鎖します", clip=clip,
                kind="announcement", broadcast_id=bid,
            )  # fmt: skip
            assert UID_RE.match(u.id) and rowid_of(u.id) == rowid_of(bid)
            assert log.add_utterance(u, committed_ms=start + 4000)
        got = log.get(f"{bid}:a")
        assert got is not None
        assert (got.kind, got.broadcast_id, got.clip) == ("announcement", bid, clip)
        assert [e.ref for e in log.events_after(0)] == [f"{bid}:a", f"{bid}:b"]
        shared = None
        if backend == "postgres":
            from voice_server.calllog.clips import PgClipStore

            shared = PgClipStore(db.pg)  # type: ignore[attr-defined]
        purger = Purger(tmp_path, AuditLog(db), purge_store(db))
        purger.run(NOW)
        assert log.get(f"{bid}:a") is None and log.get(f"{bid}:b") is not None
        assert (tmp_path / clip).exists()  # b's row (legal hold) still plays it
        assert shared is None or shared.get(clip, bid) is not None
        with db.transaction() as conn:
            channels.update(conn, "b", display_name="b", retention_days=30, legal_hold=False)
        purger.run(NOW)
        assert log.get(f"{bid}:b") is None and not (tmp_path / clip).exists()
        assert shared is None or shared.get(clip, bid) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_announcement_its_targets_and_who_heard_it_are_stored(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with database(backend, tmp_path, request) as db:
        store = AnnouncementStore(db)
        aid = new_burst_id(NOW)
        a = Announcement(
            id=aid, author="boss", author_name="Boss", text="訓練です", language="ja",
            urgent=True, repeat=1, status="playing", error="", seconds=1.5,
            clip=f"clips/_shared/{aid}.ogg", created_ms=NOW,
            targets=(Target("a", "waiting"), Target("b", "waiting")),
        )  # fmt: skip
        store.create(a)
        store.set_target(aid, "a", "playing", start_ms=NOW + 10)
        store.set_target(aid, "a", "played", end_ms=NOW + 1500)
        store.set_target(aid, "b", "slot_timeout")
        store.set_heard(aid, "a", {"ma": 0.2, "away": 0.0})
        store.set_heard(aid, "a", {"ma": 0.95})  # a second tally replaces the first (same key)
        store.set_heard(aid, "b", {"ma": 1.0})  # the same user in another channel: another row
        store.finish(aid, "done")
        got = store.get(aid)
        assert got is not None and (got.status, got.urgent, got.seconds) == ("done", True, 1.5)
        assert got.targets == (
            Target("a", "played", NOW + 10, NOW + 1500),
            Target("b", "slot_timeout"),
        )
        assert got.heard == {"a": {"ma": True, "away": False}, "b": {"ma": True}}
        assert [x.id for x in store.recent(frozenset({"b"}))] == [aid]
        assert store.recent(frozenset({"c"})) == []


def test_the_shared_clip_is_stored_in_the_clip_store_or_not_at_all(tmp_path: Path) -> None:
    from voice_server.announce.service import write_clip as write_shared
    from voice_server.announce.speech import Clip

    class Broken:
        def put(self, clip: str, data: bytes) -> None:
            raise OSError("store down")

    class Kept(dict[str, bytes]):
        def put(self, clip: str, data: bytes) -> None:
            self[clip] = data

    speech = Clip(frames=(b"\xf8\xff\xfe",) * 50, levels=(127,) * 50, pcm=b"")
    aid = new_burst_id(NOW)
    kept = Kept()
    relative = write_shared(tmp_path, aid, speech, kept)  # type: ignore[arg-type]
    assert kept == {relative: (tmp_path / relative).read_bytes()}
    assert kept[relative][:4] == b"OggS"
    other = new_burst_id(NOW + 1)
    with pytest.raises(OSError):
        write_shared(tmp_path, other, speech, Broken())  # type: ignore[arg-type]
    assert sorted(p.name for p in (tmp_path / "clips" / "_shared").iterdir()) == [f"{aid}.ogg"]
