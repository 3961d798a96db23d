"""``db copy``: a populated SQLite deployment copied into PostgreSQL gives the same search
results, accounts and a verifying audit chain; a non-empty target is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.calllog_seed import write_clip
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.announce.request import AnnounceRequest
from voice_server.announce.schedule import next_fire, parse_schedule
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.backends.copy import copy_sqlite_to_postgres
from voice_server.backends.seam import open_database
from voice_server.bench.pgserver import PgServer
from voice_server.bench.search_data import TERMS, Corpus
from voice_server.calllog.burst import BurstMeta, clip_path
from voice_server.calllog.clips import PgClipStore
from voice_server.calllog.jobqueue_sqlite import SqliteJobQueue
from voice_server.calllog.model import Gap, SearchQuery, new_burst_id
from voice_server.calllog.postgres import PgCallLog
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database, DatabaseError
from voice_server.store.pg import PgDatabase

T0 = 1_780_000_000_000
SHARED = f"clips/_shared/{new_burst_id(T0 - 5)}.ogg"
WAITING = BurstMeta(new_burst_id(T0 - 1), "ch01", "sato", "佐藤", "s", T0 - 1)
BY = Caller("cli:test", "cli", "local")


def _populate(path: Path) -> SqliteCallLog:
    db = Database(path)
    accounts = Accounts.open(db)
    accounts.service.add_channel(BY, "ch01", display_name="運用")
    accounts.service.add_user(BY, "sato", "staff", display_name="佐藤", channels=["ch01"])
    log = SqliteCallLog(db)
    corpus = Corpus(1500, end_ms=T0, seed=11, rare_rate=0.01)
    items = list(corpus.utterances())
    log.add_many(items[:-3], committed_ms=T0)
    # live commits (commit events): two rows playing one shared all-call clip, and a row whose
    # clip file is gone from the data directory
    clips = [SHARED, SHARED, "clips/ch01/2026-06-01/gone.ogg"]
    for u, clip in zip(items[-3:], clips, strict=True):
        assert log.add_utterance(replace(u, clip=clip), committed_ms=T0 + 1, burst_end_ms=T0)
    write_clip(path.parent / SHARED)
    log.add_gap(Gap(new_burst_id(T0), "ch01", "s", "S", T0, T0 + 5, "spool_quota"), created_ms=T0)
    daily = parse_schedule({"daily_at": "17:00"}, "Asia/Tokyo", T0)
    ScheduleStore(db).create(
        Scheduled(
            new_burst_id(T0), "tanaka", "田中", AnnounceRequest("閉鎖します", ("ch01",)), daily,
            next_fire(daily, T0), "active", T0,
        )
    )  # fmt: skip
    # the queue holds one burst still waiting for its transcript (its spool file)
    SqliteJobQueue(db).enqueue([(WAITING.id, T0)])
    write_clip(path.parent / "spool" / f"{WAITING.id}.ogg", tags=WAITING.tags())
    return log


def test_a_copied_deployment_answers_every_search_the_same(
    pg_server: PgServer, tmp_path: Path
) -> None:
    lite = _populate(tmp_path / "voice.db")
    url = pg_server.new_database()
    pg = PgDatabase(url).open()
    report = copy_sqlite_to_postgres(tmp_path / "voice.db", pg)
    assert report.rows["utterance"] == 1500 and report.rows["commit_event"] == 3
    assert report.rows["transcription_job"] == 1
    # the clips every node plays: the shared one once, the waiting burst's spool file
    assert (report.rows["clip"], report.missing_clips) == (2, 1)
    store = PgClipStore(pg)
    assert store.get(SHARED, "x") == (tmp_path / SHARED).read_bytes()
    assert store.of_burst(WAITING.id) == (tmp_path / "spool" / f"{WAITING.id}.ogg").read_bytes()
    assert store.get(clip_path(WAITING), WAITING.id) is not None
    assert report.rows["announcement_schedule"] == 1
    copied = ScheduleStore(open_database(url, tmp_path)).all()
    assert [(s.request.text, s.schedule.daily_at) for s in copied] == [("閉鎖します", "17:00")]
    log = PgCallLog(pg)
    queries = [SearchQuery(q=t, limit=200) for by in TERMS.values() for t in by.values()]
    queries += [SearchQuery(), SearchQuery(channels=frozenset({"ch01", "ch02"}), limit=7)]
    for query in queries:
        assert log.search(query) == lite.search(query), query
    assert log.events_after(0) == lite.events_after(0)
    assert log.gaps(channels=None, since_ms=None, until_ms=None) == lite.gaps(
        channels=None, since_ms=None, until_ms=None
    )
    accounts = Accounts.open(open_database(url, tmp_path))
    assert accounts.audit.count() == 2 and accounts.audit.verify().ok
    user = accounts.users.get("sato")
    assert user is not None and user.display_name == "佐藤" and user.member_of == ("ch01",)
    new = next(iter(Corpus(1, end_ms=T0 + 10**6, seed=99).utterances()))
    assert log.add_utterance(new, committed_ms=T0 + 2)
    assert log.last_event_seq() == lite.last_event_seq() + 1  # the sequence goes on
    with pytest.raises(DatabaseError, match="not empty"):
        copy_sqlite_to_postgres(tmp_path / "voice.db", pg)
    pg.close()


def test_db_copy_command_refuses_a_non_empty_target_in_one_line(
    pg_server: PgServer, tmp_path: Path
) -> None:
    from tests.unit.test_store_postgres import _cli

    _populate(tmp_path / "voice.db")
    url = pg_server.new_database()
    code, out, err = _cli("db", "copy", "--from", f"sqlite:{tmp_path}/voice.db", "--to", url)
    assert code == 0 and "utterance: 1500 rows" in out, err
    code, out, err = _cli("db", "copy", "--from", f"sqlite:{tmp_path}/voice.db", "--to", url)
    assert code == 1 and err.count("\n") == 1 and "not empty" in err
    code, _, err = _cli("db", "copy", "--from", url, "--to", f"sqlite:{tmp_path}/x.db")
    assert code == 1 and "--from sqlite:PATH --to postgresql://" in err
