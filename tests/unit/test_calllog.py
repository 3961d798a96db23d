"""The call-log store: normalization, idempotent commits, search by 1, 2 and 3+ characters,
filters, pagination, deletion from every index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.backends import BACKENDS, call_log
from voice_server.calllog.model import (
    Gap,
    SearchQuery,
    Utterance,
    Word,
    decode_cursor,
    encode_cursor,
    iso,
    new_burst_id,
    parse_time,
    rowid_of,
)
from voice_server.calllog.normalize import normalize, short_grams, split_terms
from voice_server.store.database import Database

T0 = 1_780_000_000_000  # ms


def utt(i: int, text: str, *, channel: str = "facilities", speaker: str = "sato", lang: str = "ja"):
    start = T0 + i * 60_000
    return Utterance(
        id=new_burst_id(start),
        channel=channel,
        speaker_id=speaker,
        speaker_name=speaker.title(),
        start_ms=start,
        end_ms=start + 2000,
        text=text,
        words=(Word("x", 0.1, 0.5, 0.9),),
        model="test",
        language=lang,
        clip=f"clips/{channel}/{i}.ogg",
    )


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with call_log(request.param, tmp_path, request) as store:
        yield store


def test_normalization_removes_the_spaces_vosk_puts_between_japanese_words() -> None:
    assert normalize("東 門 で 水 漏れ が あり ます", "ja") == "東門で水漏れがあります"
    assert normalize("東 門 で 水 漏れ") == "東門で水漏れ"  # queries have no language
    assert normalize("ＡＢＣ　ｶﾀｶﾅ") == "abc カタカナ"  # NFKC + casefold
    assert normalize("동쪽  문에서   물이", "ko") == "동쪽 문에서 물이"  # Korean keeps spaces
    assert split_terms("水 漏れ  PUMP ﾎﾟﾝﾌﾟ") == ["水漏れ", "pump", "ポンプ"]


def test_side_index_grams_are_every_unigram_and_bigram_within_words() -> None:
    assert short_grams("水漏れ ab") == {"水", "漏", "れ", "水漏", "漏れ", "a", "b", "ab"}


@given(st.text(max_size=40))
@settings(max_examples=200)
def test_normalization_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


def test_cursor_round_trip_and_garbage_is_refused() -> None:
    assert decode_cursor(encode_cursor(123456789)) == 123456789
    for bad in ("", "xyz", encode_cursor(1)[:-1] + "!", "A" * 100):
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_times_are_iso_8601_with_zone_and_parse_back() -> None:
    text = iso(T0)
    assert "T" in text and (text.endswith("+00:00") or text[-6] in "+-")
    assert parse_time(text) == T0
    assert parse_time("2026-06-01T09:00:00+09:00") == parse_time("2026-06-01T00:00:00Z")
    with pytest.raises(ValueError):
        parse_time("2026-06-01T09:00:00")


def test_rowids_follow_start_time() -> None:
    a, b = new_burst_id(T0), new_burst_id(T0 + 1)
    assert rowid_of(a) < rowid_of(b)


def test_a_burst_is_committed_once_and_then_done(log: Any) -> None:
    u = utt(0, "東 門 で 水 漏れ")
    assert log.add_utterance(u, committed_ms=T0 + 5000, burst_end_ms=T0 + 4500)
    assert not log.add_utterance(u, committed_ms=T0 + 6000)
    gap = Gap(new_burst_id(T0), "ops", "x", "X", T0, T0 + 10, "spool_quota")
    assert log.add_gap(gap, created_ms=T0)
    assert not log.add_gap(gap, created_ms=T0)
    assert log.done([u.id, gap.id, "0000000000000abcdef"]) == {u.id, gap.id}
    got = log.get(u.id)
    assert got is not None and got.text == u.text and got.words == u.words
    assert log.commit_latencies_ms(T0) == [500]
    assert [g.reason for g in log.gaps(channels=None, since_ms=None, until_ms=None)] == [
        "spool_quota"
    ]


def test_search_finds_one_two_and_three_plus_characters_newest_first(log: Any) -> None:
    texts = [
        "東 門 で 水 漏れ です",
        "火事 です",
        "救急 車 を 呼んで",
        "水 を ください",
        "pump 漏れ",
    ]
    for i, text in enumerate(texts):
        log.add_utterance(utt(i, text), committed_ms=T0)

    def hits(q: str, **kw: object) -> list[str]:
        page = log.search(SearchQuery(q=q, **kw))  # type: ignore[arg-type]
        return [u.text for u in page.items]

    assert hits("水漏れ") == [texts[0]]
    assert hits("漏れ") == [texts[4], texts[0]]  # 2 characters: side index, newest first
    assert hits("水") == [texts[3], texts[0]]  # 1 character
    assert hits("火事") == [texts[1]]
    assert hits("救急車") == [texts[2]]
    assert hits("PUMP  漏れ") == [texts[4]]  # terms combine with AND
    assert hits("存在しない") == []
    assert len(hits("")) == 5


def test_filters_and_pagination(log: Any) -> None:
    for i in range(7):
        log.add_utterance(
            utt(i, f"報告 {i} 件目", channel="a" if i % 2 else "b", speaker=f"s{i % 3}"),
            committed_ms=T0,
        )
    page = log.search(SearchQuery(channels=frozenset({"a"}), limit=2))
    assert [u.channel for u in page.items] == ["a", "a"] and page.next_rowid is not None
    rest = log.search(SearchQuery(channels=frozenset({"a"}), limit=2, before_rowid=page.next_rowid))
    assert [u.start_ms for u in page.items + rest.items] == sorted(
        (T0 + i * 60_000 for i in (1, 3, 5)), reverse=True
    )
    assert rest.next_rowid is None
    assert log.search(SearchQuery(channels=frozenset())).items == ()
    only = log.search(SearchQuery(speaker="s0", since_ms=T0 + 60_000, until_ms=T0 + 6 * 60_000))
    assert [u.start_ms for u in only.items] == [T0 + 6 * 60_000, T0 + 3 * 60_000]
    assert log.search(SearchQuery(q="報告", channels=frozenset({"b"}), limit=10)).items
    assert len(log.search(SearchQuery(q="件目", limit=10)).items) == 7


def test_deleted_utterances_leave_the_table_and_both_indexes(log: Any, tmp_path: Path) -> None:
    u = utt(0, "水漏れ の 報告")
    log.add_utterance(u, committed_ms=T0)
    assert log.delete([u.id]) == 1
    assert log.search(SearchQuery(q="水漏れ")).items == ()
    assert log.search(SearchQuery(q="漏れ")).items == ()
    assert log.search(SearchQuery(q="漏")).items == ()
    if not (tmp_path / "voice.db").exists():
        return  # PostgreSQL: both indexes are the table's own
    db = Database(tmp_path / "voice.db")
    with db.connection() as conn:
        for token in ("e6bc8fe3828c", "e6bc8f"):  # 漏れ, 漏: hex of the grams
            assert (
                conn.execute(
                    "SELECT count(*) FROM utterance_grams WHERE utterance_grams MATCH ?",
                    (f'"{token}"',),
                ).fetchone()[0]
                == 0
            )
        assert (
            conn.execute(
                "SELECT count(*) FROM utterance_fts WHERE utterance_fts MATCH '\"水漏れ\"'"
            ).fetchone()[0]
            == 0
        )


def test_every_commit_appends_to_the_event_sequence_readable_after_a_seq(
    log: Any,
) -> None:
    assert log.last_event_seq() == 0 and log.events_after(0) == []
    a, b, c = utt(1, "一"), utt(2, "二", channel="ops"), utt(3, "三")
    assert log.add_utterance(a, committed_ms=T0 + 1)
    assert not log.add_utterance(a, committed_ms=T0 + 2)  # a retry commits nothing: no event
    assert log.add_utterance(b, committed_ms=T0 + 3)
    events = log.events_after(0)
    assert [(e.kind, e.ref, e.channel) for e in events] == [
        ("utterance", a.id, "facilities"),
        ("utterance", b.id, "ops"),
    ]
    assert events[0].seq < events[1].seq == log.last_event_seq()
    log.delete([b.id])  # the sequence never goes back: a later commit gets a larger seq
    assert log.add_utterance(c, committed_ms=T0 + 4)
    after = log.events_after(events[1].seq)
    assert [e.ref for e in after] == [c.id] and after[0].seq > events[1].seq
    assert log.events_after(0, limit=1) == events[:1]


def test_replay_lists_a_channels_rows_newest_first_without_other_peoples_direct_talks(
    log: Any,
) -> None:
    from dataclasses import replace

    rows = [
        utt(1, "一"),
        utt(2, "二", channel="ops"),
        replace(utt(3, "三", speaker="suzuki"), kind="direct", target_sub="tanaka"),
        replace(utt(4, "四", speaker="suzuki"), kind="direct", target_sub="sato"),
        replace(utt(5, "五"), kind="direct", target_sub="suzuki"),
        replace(utt(6, "六"), kind="announcement", broadcast_id="b1"),
        utt(7, "七"),
    ]
    for u in rows:
        assert log.add_utterance(u, committed_ms=T0)
    page = log.replay("facilities", "sato", since_ms=T0)
    # suzuki's direct talk to tanaka is not sato's to hear; to sato and from sato are
    assert [u.text for u in page.items] == ["七", "六", "五", "四", "一"]
    assert page.items[2].target_sub == "suzuki" and page.next_rowid is None
    assert [u.text for u in log.replay("facilities", "tanaka", since_ms=T0).items] == [
        "七",
        "六",
        "三",
        "一",
    ]
    # the window: nothing before since_ms; pages back with the rowid cursor
    assert [u.text for u in log.replay("facilities", "sato", since_ms=rows[5].start_ms).items] == [
        "七",
        "六",
    ]
    first = log.replay("facilities", "sato", since_ms=T0, limit=2)
    assert [u.text for u in first.items] == ["七", "六"] and first.next_rowid is not None
    second = log.replay("facilities", "sato", since_ms=T0, before_rowid=first.next_rowid, limit=2)
    assert [u.text for u in second.items] == ["五", "四"]
    log.delete([rows[6].id])  # purged rows are gone from the replay too
    assert next(u.text for u in log.replay("facilities", "sato", since_ms=T0).items) == "六"
