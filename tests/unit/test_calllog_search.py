"""Call-log search: exact against a brute-force filter for generated queries, pages newest
first, 1-, 2- and 3+-character Japanese terms, filters never inside MATCH, query plans that never
scan the whole log, and the stream scheduler."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.backends import BACKENDS, call_log
from voice_server.bench.search_data import TERMS, Corpus
from voice_server.calllog.model import SearchQuery, Utterance, new_burst_id
from voice_server.calllog.normalize import gram_token, normalize, split_terms
from voice_server.calllog.pgsearch import id_range, like_pattern, search_sql
from voice_server.calllog.plan import MAX_CHANNEL_STREAM, first_chunk, next_step, plan
from voice_server.calllog.search import chunk_sql, rows_sql
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

T0 = 1_780_000_000_000
ALPHABET = "水漏れ火事救急東門でのがあ"
CHANNELS = ["a", "b", "c", "d"]
SPEAKERS = ["s1", "s2", "s3"]


def corpus_items() -> tuple[Utterance, ...]:
    """1,500 utterances of a tiny alphabet (so short and long terms both hit)."""
    rng = random.Random(7)
    items = []
    for i in range(1500):
        words = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))) for _ in range(3)]
        start = T0 + i * 1000
        items.append(
            Utterance(
                id=new_burst_id(start),
                channel=rng.choice(CHANNELS),
                speaker_id=rng.choice(SPEAKERS),
                speaker_name="x",
                start_ms=start,
                end_ms=start + 500,
                text=" ".join(words),
                language="ja",
            )
        )
    return tuple(items)


@pytest.fixture(scope="module", params=BACKENDS)
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, tuple[Utterance, ...]]]:
    """The generated corpus on each backend, loaded once per module."""
    items = corpus_items()
    with call_log(request.param, tmp_path_factory.mktemp("corpus"), request) as log:
        log.add_many(items, committed_ms=T0)
        if hasattr(log, "window"):  # PostgreSQL: pages that end in the window and beyond it
            log.window = 97
        yield log, items


@pytest.fixture(params=BACKENDS)
def empty_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with call_log(request.param, tmp_path, request) as log:
        if hasattr(log, "window"):  # PostgreSQL: past the window too
            log.window = 500
        yield log


def brute(items: tuple[Utterance, ...], query: SearchQuery) -> list[str]:
    terms = split_terms(query.q or "")
    out = [
        u
        for u in items
        if all(t in normalize(u.text, u.language) for t in terms)
        and (query.channels is None or u.channel in query.channels)
        and (query.speaker is None or u.speaker_id == query.speaker)
        and (query.since_ms is None or u.start_ms >= query.since_ms)
        and (query.until_ms is None or u.start_ms <= query.until_ms)
    ]
    return [u.id for u in sorted(out, key=lambda u: u.start_ms, reverse=True)]


def all_pages(log: Any, query: SearchQuery) -> list[str]:
    ids: list[str] = []
    before = None
    while True:
        page = log.search(
            SearchQuery(
                channels=query.channels,
                speaker=query.speaker,
                q=query.q,
                since_ms=query.since_ms,
                until_ms=query.until_ms,
                before_rowid=before,
                limit=query.limit,
            )
        )
        ids += [u.id for u in page.items]
        if page.next_rowid is None:
            return ids
        assert len(page.items) == query.limit
        before = page.next_rowid


queries = st.builds(
    SearchQuery,
    channels=st.none() | st.frozensets(st.sampled_from(CHANNELS), max_size=3),
    speaker=st.none() | st.sampled_from(SPEAKERS),
    q=st.none() | st.lists(st.text(ALPHABET, min_size=1, max_size=4), max_size=2).map(" ".join),
    since_ms=st.none() | st.integers(T0, T0 + 1_500_000),
    until_ms=st.none() | st.integers(T0, T0 + 1_500_000),
    limit=st.sampled_from([1, 7, 50, 200]),
)


@given(queries)
@settings(max_examples=150, deadline=None)
def test_every_page_of_every_query_is_exactly_the_brute_force_answer(
    corpus: tuple[Any, tuple[Utterance, ...]], query: SearchQuery
) -> None:
    log, items = corpus
    assert all_pages(log, query) == brute(items, query)


def test_japanese_terms_of_one_two_and_three_plus_characters(empty_log: Any) -> None:
    log = empty_log
    c = Corpus(3000, end_ms=T0, seed=3, rare_rate=0.01)
    log.add_many(list(c.utterances()), committed_ms=T0)
    items = tuple(c.utterances())  # same seed: same texts and times (ids differ)
    for by_freq in TERMS.values():
        for freq, term in by_freq.items():
            got = [u.text for u in log.search(SearchQuery(q=term, limit=200)).items]
            want = [u.text for u in items if term in normalize(u.text, "ja")][::-1][:200]
            assert got == want, term
            assert (not got) == (freq == "none"), term


def test_filters_never_go_into_match_and_short_terms_use_the_side_index() -> None:
    query = SearchQuery(
        q="水漏れ 漏 お願いします",
        channels=frozenset({"ops"}),
        speaker="sato",
        since_ms=T0,
        until_ms=T0 + 10,
    )
    p = plan(query)
    names = [s.name for s in p.streams]
    assert names == ["text", "speaker", "channels", "range"]  # "水漏れ 漏 …" is one term
    p = plan(SearchQuery(q="水漏れ 漏 pump xy", channels=frozenset({"ops"}), speaker="sato"))
    assert [s.name for s in p.streams] == ["text", "grams", "speaker", "channels"]
    text, grams = p.streams[0], p.streams[1]
    assert text.args == ('"水漏れ漏" AND "pump"',)
    assert grams.args == (f'"{gram_token("xy")}"',)
    for stream in (text, grams):
        assert "ops" not in stream.args[0] and "sato" not in stream.args[0]
    many = frozenset(f"c{i}" for i in range(MAX_CHANNEL_STREAM + 1))
    assert [s.name for s in plan(SearchQuery(channels=many)).streams] == ["range"]
    assert plan(SearchQuery(channels=frozenset())).empty


def test_query_plans_never_scan_the_whole_log(tmp_path: Path) -> None:
    log = SqliteCallLog(Database(tmp_path / "voice.db"))
    log.add_many(list(Corpus(500, end_ms=T0).utterances()), committed_ms=T0)
    shapes = [
        SearchQuery(),
        SearchQuery(q="お願いします"),
        SearchQuery(q="門"),
        SearchQuery(q="確認 門 お願いします", speaker="s001"),
        SearchQuery(q="竜巻", channels=frozenset({"ch01", "ch02", "ch03"}), since_ms=T0 - 10**9),
        SearchQuery(channels=frozenset({"ch01"}), until_ms=T0),
    ]
    db = Database(tmp_path / "voice.db")
    with db.connection() as conn:
        for query in shapes:
            p = plan(query)
            for stream in p.streams:
                sql = chunk_sql(stream, p.where)
                params = (*p.args, *stream.params(p.lo, p.hi, 64))
                lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
                for line in lines:
                    full_scan = re.match(r"SCAN (utterance|u)\b(?! VIRTUAL)", line)
                    assert not full_scan, (stream.name, lines)
                    if "TEMP B-TREE" in line:  # only the per-channel arms order their ≤ n rows
                        assert stream.name == "channels", (stream.name, lines)
                assert any("USING" in line or "VIRTUAL TABLE" in line for line in lines)
        lines = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + rows_sql(2), (1, 2))]
        assert any("INTEGER PRIMARY KEY" in line for line in lines)


def test_the_scheduler_advances_the_stream_closest_to_a_full_page() -> None:
    assert first_chunk(50) == 64 and first_chunk(200) == 201
    # stream 1 found 30 of 64, stream 0 found 1: stream 1, about 21 more rows' worth
    index, size = next_step([1, 30], [64, 64], 51)
    assert index == 1 and size == 64
    index, size = next_step([0, 0], [64, 64], 51)
    assert index == 0 and 64 <= size <= 16384
    assert next_step([0, 2], [1000, 64], 51)[0] == 1


def test_migration_4_carries_the_old_side_index_over(tmp_path: Path) -> None:
    import sqlite3

    from voice_server.calllog.normalize import short_grams
    from voice_server.store.database import MIGRATIONS, connect, migrate

    path = tmp_path / "voice.db"
    conn = connect(path)
    for index, script in enumerate(MIGRATIONS[:3]):  # a database made before migration 4
        conn.executescript(script)
        conn.execute(f"PRAGMA user_version = {index + 1}")
    start = T0
    conn.execute(
        "INSERT INTO utterance (id, uid, channel, speaker_id, speaker_name, start_ms, end_ms, "
        "text, norm, model, language, committed_ms) VALUES (?, ?, 'ops', 's', 'S', ?, ?, "
        "'水 漏れ', '水漏れ', 'm', 'ja', ?)",
        (start << 10, new_burst_id(start), start, start + 1, start),
    )
    conn.executemany(
        "INSERT INTO utterance_gram (gram, utterance_id) VALUES (?, ?)",
        [(g, start << 10) for g in short_grams("水漏れ")],
    )
    migrate(conn)
    conn.close()
    log = SqliteCallLog(Database(path))
    for term in ("漏れ", "水", "水漏れ"):
        assert [u.text for u in log.search(SearchQuery(q=term)).items] == ["水 漏れ"], term
    found = log.search(SearchQuery(q="漏れ")).items[0]
    assert log.delete([found.id]) == 1 and log.search(SearchQuery(q="漏")).items == ()
    check = sqlite3.connect(path)
    check.execute("INSERT INTO utterance_grams (utterance_grams) VALUES ('integrity-check')")


def test_postgres_search_statement_rechecks_every_term_and_escapes_like() -> None:
    query = SearchQuery(q="水漏れ xy a%_", channels=frozenset({"b", "a"}), speaker="s")
    assert id_range(query) == (0, (1 << 63) - 1)
    sql, args = search_sql(query, 5, 9, 51)
    assert "norm LIKE %s" in sql and "grams @> ARRAY[%s]::text[] AND strpos(norm, %s) > 0" in sql
    assert args == [5, 9, "%水漏れ%", "xy", "xy", "%a\\%\\_%", "s", ["a", "b"], 51]
    assert like_pattern("a\\b") == "%a\\\\b%"
    assert id_range(SearchQuery(channels=frozenset())) is None
    assert id_range(SearchQuery(since_ms=T0, until_ms=T0 - 1)) is None
    assert id_range(SearchQuery(before_rowid=100)) == (0, 99)


def test_postgres_serves_rare_one_two_and_three_plus_character_terms_from_its_indexes(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """EXPLAIN of the step after the window (index scans off, as PgCallLog runs it): a rare 3+
    character term reads the trigram GIN index, a rare 1-2 character term the grams GIN index."""
    with call_log("postgres", tmp_path, request) as log:
        c = Corpus(8000, end_ms=T0, seed=5, rare_rate=0.003)
        log.add_many(list(c.utterances()), committed_ms=T0)
        with log._db.transaction() as conn:
            conn.execute("ANALYZE utterance")
            conn.execute("SET LOCAL enable_indexscan = off")
            for length, index in (("1", "grams"), ("2", "grams"), ("3+", "trgm")):
                sql, args = search_sql(SearchQuery(q=TERMS[length]["rare"]), 0, 1 << 62, 51)
                lines = [r[0] for r in conn.execute("EXPLAIN " + sql, args).fetchall()]
                assert any(f"Bitmap Index Scan on utterance_{index}" in ln for ln in lines), lines
