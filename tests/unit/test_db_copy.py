"""``db copy``: a populated SQLite deployment copied into PostgreSQL gives the same search
results, accounts and a verifying audit chain; a non-empty target is refused."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.calllog_seed import write_clip
from tests.unit.test_alerts_store import emergency
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.service import Caller
from voice_server.alerts.keywords import parse_list
from voice_server.alerts.model import new_alert_id
from voice_server.alerts.service import AlertService
from voice_server.alerts.store import DEPLOYMENT, AlertStore
from voice_server.announce.request import AnnounceRequest
from voice_server.announce.schedule import next_fire, parse_schedule
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.announce.store import Announcement, AnnouncementStore, Target
from voice_server.audit.log import AuditLog
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
from voice_server.transcribe.phrase_store import open_store as open_phrase_store
from voice_server.transcribe.phrases import save as save_phrases
from voice_server.webhooks.store import WebhookStore

T0 = 1_780_000_000_000
SHARED = f"clips/_shared/{new_burst_id(T0 - 5)}.ogg"
WAITING = BurstMeta(new_burst_id(T0 - 1), "ch01", "sato", "佐藤", "s", T0 - 1)
BY = Caller("cli:test", "cli", "local")
ALERT_ID = new_alert_id(T0)
ANNOUNCEMENT = Announcement(
    id=new_burst_id(T0 - 9), author="boss", author_name="Boss", text="訓練です", language="ja",
    urgent=False, repeat=1, status="playing", error="", seconds=1.0, clip=SHARED,
    created_ms=T0 - 9, targets=(Target("ch01", "waiting"),),
)  # fmt: skip


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
    # an alert (its event, its audit row), a keyword list and the matcher's cursor; a webhook
    # endpoint with a queued delivery; an announcement with its targets and who heard it
    alerts = AlertService(AlertStore(db), AuditLog(db), log)
    assert alerts.raise_alert(replace(emergency(), id=ALERT_ID)) is not None
    with db.transaction() as conn:
        alerts.store.set_keywords(conn, DEPLOYMENT, parse_list(["火事"]))
        alerts.store.set_cursor(conn, "keywords", 3)
    hooks = WebhookStore(db)
    with db.transaction() as conn:
        hooks.add_endpoint(conn, "http://127.0.0.1:9/h", ["emergency.raised"], "whsec_AA==",
                           None, "root", T0)  # fmt: skip
        assert hooks.enqueue(conn, "msg_1", "emergency.raised", "{}", T0) == 1
    announcements = AnnouncementStore(db)
    announcements.create(ANNOUNCEMENT)
    announcements.set_target(ANNOUNCEMENT.id, "ch01", "played", start_ms=T0, end_ms=T0 + 900)
    announcements.set_heard(ANNOUNCEMENT.id, "ch01", {"sato": 1.0, "away": 0.0})
    announcements.finish(ANNOUNCEMENT.id, "done")
    save_phrases(path.parent, ["中央公民館", "田中"])  # the ASR phrase list file
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
    for table, n in (("alert", 1), ("alert_event", 1), ("alert_keyword", 1), ("alert_cursor", 1),
                     ("webhook_endpoint", 1), ("webhook_delivery", 1), ("announcement", 1),
                     ("announcement_target", 1), ("announcement_heard", 2)):  # fmt: skip
        assert report.rows[table] == n, table
    target = open_database(url, tmp_path)
    assert report.rows["asr_phrases"] == 1
    elsewhere = tmp_path / "elsewhere"  # another node: no file, the shared row
    elsewhere.mkdir()
    assert open_phrase_store(target, elsewhere).load() == ["中央公民館", "田中"]
    alerts = AlertStore(target)
    got = alerts.get(ALERT_ID)
    assert got is not None and got.subject == "sato" and got.dedupe == "emergency:sato"
    assert [k.text for k in alerts.keywords()[DEPLOYMENT]] == ["火事"]
    assert alerts.cursor("keywords") == 3 and alerts.last_event_seq() == 1
    (queued,) = WebhookStore(target).list("queued")
    assert (queued.msg_id, queued.event_type) == ("msg_1", "emergency.raised")
    heard = AnnouncementStore(target).get(ANNOUNCEMENT.id)
    assert heard is not None and heard.status == "done"
    assert heard.heard == {"ch01": {"sato": True, "away": False}}
    assert heard.targets == (Target("ch01", "played", T0, T0 + 900),)
    with target.transaction() as conn:  # the sequences go on after the copied rows
        assert WebhookStore(target).enqueue(conn, "msg_2", "emergency.raised", "{}", T0) == 1
    assert max(d.id for d in WebhookStore(target).list("queued")) == queued.id + 1
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
    assert accounts.audit.count() == 3 and accounts.audit.verify().ok
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
