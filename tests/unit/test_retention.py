"""Retention: cutoffs per channel, legal hold, and a purge after which the text is gone from the
bytes of every file of the data directory (database, WAL, clips, spool)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.calllog_seed import files_with, seed, spool, utterance, write_clip
from voice_server.audit.log import AuditLog
from voice_server.calllog.model import Gap, SearchQuery
from voice_server.calllog.purge import Purger
from voice_server.calllog.retention import DAY_MS, Rule, cutoffs, unknown_channel_cutoff
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database

NOW = 1_790_000_000_000
CANARY = "ホタルイカ合言葉zqx"
KEPT = "サクラエビ合言葉zqy"


def test_cutoffs_follow_retention_and_legal_hold() -> None:
    rules = [Rule("a", 30, False), Rule("b", 30, True), Rule("c", None, False), Rule("d", 7, False)]
    assert [(c.channel, c.before_ms) for c in cutoffs(rules, NOW)] == [
        ("a", NOW - 30 * DAY_MS),
        ("d", NOW - 7 * DAY_MS),
    ]
    assert unknown_channel_cutoff(rules, NOW) is None
    assert unknown_channel_cutoff([Rule("a", 30, False), Rule("d", 7, False)], NOW) == (
        NOW - 30 * DAY_MS
    )


def test_a_purge_removes_expired_text_from_every_byte_and_a_legal_hold_keeps_it(
    tmp_path: Path,
) -> None:
    db = Database(tmp_path / "voice.db")
    channels = ChannelStore(db)
    for name, days, hold in (("a", 30, False), ("b", 30, True), ("c", None, False)):
        channels.add(name)
        with db.transaction() as conn:
            channels.update(conn, name, display_name=name, retention_days=days, legal_hold=hold)
    old, recent = NOW - 40 * DAY_MS, NOW - DAY_MS
    expired = seed(
        tmp_path,
        [utterance(f"{CANARY} {i}", channel="a", start_ms=old + i) for i in range(5)],
    )
    kept = seed(
        tmp_path,
        [
            utterance(f"最近 {CANARY}", channel="a", start_ms=recent),
            utterance(f"{KEPT} 保全", channel="b", start_ms=old),
            utterance(f"{KEPT} 無期限", channel="c", start_ms=old),
        ],
    )
    log = SqliteCallLog(db)
    log.add_gap(
        Gap("1" * 13 + "abcdef", "a", "s", "S", old, old + 5, "spool_quota"), created_ms=old
    )
    waiting = utterance("not yet transcribed", channel="a", start_ms=old + 99, clip=False)
    spool(tmp_path, waiting)
    spool(tmp_path, expired[0])  # committed, not yet moved to clips/
    write_clip(tmp_path / "clips" / "a" / "2020-01-01" / "0000000000000abcdef.ogg")  # an orphan
    with db.connection() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert "voice.db" in files_with(tmp_path, CANARY)
    audit = AuditLog(db)

    dry = Purger(tmp_path, audit).run(NOW, dry_run=True)
    assert [(c.channel, c.utterances, c.gaps) for c in dry.channels] == [("a", 5, 1)]
    assert len(log.search(SearchQuery(channels=frozenset({"a"}))).items) == 6
    assert audit.count() == 0

    report = Purger(tmp_path, audit).run(NOW, actor="cli:test")
    assert [(c.channel, c.utterances, c.gaps) for c in report.channels] == [("a", 5, 1)]
    assert report.channels[0].files == 5 + 1 + 1  # clips, the unmoved spool file, the orphan
    assert report.spool_files == 1  # the spool file never transcribed
    assert report.scrubbed and report.wal_truncated
    left = log.search(SearchQuery(limit=200)).items
    assert sorted(u.id for u in left) == sorted(u.id for u in kept)
    assert [u.id for u in log.search(SearchQuery(q="ホタルイカ")).items] == [kept[0].id]
    found = [u.id for u in log.search(SearchQuery(q="合言")).items]
    assert found[0] == kept[0].id and sorted(found) == sorted(u.id for u in kept)
    assert log.gaps(channels=None, since_ms=None, until_ms=None) == []
    for u in expired:
        assert not (tmp_path / str(u.clip)).exists()
    assert all((tmp_path / str(u.clip)).exists() for u in kept)
    assert not list((tmp_path / "spool").glob("*.ogg"))
    assert files_with(tmp_path, KEPT) == ["voice.db"]  # the legal hold and "for ever" keep theirs
    entries = [e for e in audit.iter_all() if e.action == "calllog.purge"]
    assert [(e.actor, e.target) for e in entries] == [("cli:test", "channel:a")]
    assert Purger(tmp_path, audit).run(NOW).scrubbed is False  # nothing left to purge


def test_after_a_purge_the_canary_is_in_no_file_of_the_data_directory(tmp_path: Path) -> None:
    db = Database(tmp_path / "voice.db")
    channels = ChannelStore(db)
    channels.add("a")
    with db.transaction() as conn:
        channels.update(conn, "a", display_name="a", retention_days=1, legal_hold=False)
    rows = seed(
        tmp_path,
        [
            utterance(f"{CANARY}{i} 本文", channel="a", start_ms=NOW - 3 * DAY_MS + i)
            for i in range(50)
        ],
    )
    seed(tmp_path, [utterance("今日 の 報告", channel="a", start_ms=NOW - 1000)])
    spool(tmp_path, rows[0])
    with db.connection() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    SqliteCallLog(db).search(SearchQuery(q="ホタルイカ"))  # a reader's connection stays open
    assert files_with(tmp_path, CANARY)
    started = time.monotonic()
    report = Purger(tmp_path, AuditLog(db)).run(NOW)
    assert report.channels[0].utterances == 50 and time.monotonic() - started < 10
    assert files_with(tmp_path, CANARY) == []
    assert files_with(tmp_path, "ホタルイカ") == []
    assert (tmp_path / "voice.db-wal").stat().st_size == 0


def test_the_purge_on_postgres_removes_expired_rows_and_files_and_keeps_the_held(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from tests.backends import database
    from voice_server.backends.seam import purge_store
    from voice_server.calllog.clips import PgClipStore
    from voice_server.calllog.postgres import PgCallLog

    with database("postgres", tmp_path, request) as db:
        channels = ChannelStore(db)
        for name, days, hold in (("a", 30, False), ("b", 30, True)):
            channels.add(name)
            with db.transaction() as conn:
                channels.update(conn, name, display_name=name, retention_days=days, legal_hold=hold)
        log = PgCallLog(db.pg)
        old, recent = NOW - 40 * DAY_MS, NOW - DAY_MS
        expired = seed(
            tmp_path,
            [utterance(f"{CANARY} {i}", channel="a", start_ms=old + i) for i in range(3)],
            log,
        )
        kept = seed(
            tmp_path,
            [
                utterance(f"最近 {CANARY}", channel="a", start_ms=recent),
                utterance(f"{KEPT} 保全", channel="b", start_ms=old),
            ],
            log,
        )
        gap_id = f"{old:013d}abcdef"
        log.add_gap(Gap(gap_id, "a", "s", "S", old, old + 5, "x"), created_ms=old)
        shared = PgClipStore(db.pg)  # the clips' shared copies go with their rows
        for u in [*expired, *kept]:
            shared.put(str(u.clip), (tmp_path / str(u.clip)).read_bytes())
        shared.put(f"clips/a/x/{gap_id}.ogg", b"OggS gap burst")
        audit = AuditLog(db)
        purger = Purger(tmp_path, audit, purge_store(db))
        dry = purger.run(NOW, dry_run=True)
        assert [(c.channel, c.utterances, c.gaps) for c in dry.channels] == [("a", 3, 1)]
        report = purger.run(NOW, actor="cli:test")
        assert [(c.channel, c.utterances, c.gaps, c.files) for c in report.channels] == [
            ("a", 3, 1, 3)
        ]
        assert report.scrubbed and not report.wal_truncated  # PostgreSQL keeps its own WAL
        left = log.search(SearchQuery(limit=200)).items
        assert sorted(u.id for u in left) == sorted(u.id for u in kept)
        assert [u.id for u in log.search(SearchQuery(q="ホタルイカ")).items] == [kept[0].id]
        assert all(not (tmp_path / str(u.clip)).exists() for u in expired)
        assert all(shared.of_burst(u.id) is None for u in expired)
        assert all(shared.of_burst(u.id) is not None for u in kept)
        assert shared.of_burst(gap_id) is None
        assert log.gaps(channels=None, since_ms=None, until_ms=None) == []
        assert [e.target for e in audit.iter_all() if e.action == "calllog.purge"] == ["channel:a"]
        assert audit.verify().ok


def test_a_shared_all_call_clip_goes_with_its_last_row_and_a_legal_hold_keeps_it(
    tmp_path: Path,
) -> None:
    """An all-call reached a (30 days), b (30 days, legal hold) and c (7 days): one shared clip,
    a row per channel. Purging a and c keeps the clip (b's held row still plays it); lifting b's
    hold purges its row and only then the clip. No channel's day folder holds the shared clip."""
    from dataclasses import replace

    db = Database(tmp_path / "voice.db")
    channels = ChannelStore(db)
    for name, days, hold in (("a", 30, False), ("b", 30, True), ("c", 7, False)):
        channels.add(name)
        with db.transaction() as conn:
            channels.update(conn, name, display_name=name, retention_days=days, legal_hold=hold)
    old = NOW - 40 * DAY_MS
    burst = utterance(f"{CANARY} 全体連絡", channel="a", start_ms=old, clip=False)
    shared = f"clips/_shared/{burst.id}.ogg"
    rows = [
        replace(burst, id=f"{burst.id}:{ch}", channel=ch, clip=shared, kind="all_call",
                broadcast_id=burst.id)
        for ch in ("a", "b", "c")
    ]  # fmt: skip
    seed(tmp_path, rows)  # one add: ids of one burst share a preferred rowid
    assert (tmp_path / shared).exists()
    audit = AuditLog(db)
    log = SqliteCallLog(db)

    report = Purger(tmp_path, audit).run(NOW)
    assert sorted((c.channel, c.utterances) for c in report.channels) == [("a", 1), ("c", 1)]
    assert sum(c.files for c in report.channels) == 0  # b's held row still plays the clip
    assert [u.id for u in log.search(SearchQuery(limit=10)).items] == [f"{burst.id}:b"]
    assert (tmp_path / shared).exists()

    with db.transaction() as conn:
        channels.update(conn, "b", display_name="b", retention_days=30, legal_hold=False)
    report = Purger(tmp_path, audit).run(NOW)
    assert [(c.channel, c.utterances, c.files) for c in report.channels if c.utterances] == [
        ("b", 1, 1)
    ]
    assert not (tmp_path / shared).exists()
    assert not log.search(SearchQuery(limit=10)).items
    assert files_with(tmp_path, CANARY) == []


def test_two_nodes_on_postgres_purge_once_and_the_other_sweeps_its_own_files(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The scheduled purge of two nodes sharing one PostgreSQL database: one node's run purges
    (one audit row); the other, skipped within the period, removes only its own expired files."""
    from tests.backends import database
    from voice_server.backends.seam import open_job_locks, purge_store
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.calllog.schedule import PurgeSchedule
    from voice_server.config import Config
    from voice_server.store.job_lock import PgJobLocks

    node_a, node_b = tmp_path / "a", tmp_path / "b"
    with database("postgres", tmp_path, request) as db:
        ChannelStore(db).add("a")
        with db.transaction() as conn:
            ChannelStore(db).update(
                conn, "a", display_name="a", retention_days=30, legal_hold=False
            )
        old = NOW - 40 * DAY_MS
        seed(node_a, [utterance(f"{CANARY} {i}", channel="a", start_ms=old + i) for i in range(3)],
             PgCallLog(db.pg))  # fmt: skip
        stale = node_b / "clips" / "a" / "2026-01-01" / "left-behind.ogg"  # b's own clip day
        write_clip(stale)
        audit = AuditLog(db)
        config = Config(purge_interval_seconds=3600)
        locks = [open_job_locks(db), PgJobLocks(db.pg_url)]
        try:
            a = PurgeSchedule(Purger(node_a, audit, purge_store(db)), config, locks[0])
            b = PurgeSchedule(Purger(node_b, audit, purge_store(db)), config, locks[1])
            report = a.run_step(NOW)
            assert report is not None and [c.utterances for c in report.channels] == [3]
            assert b.run_step(NOW) is None  # a purged less than a period ago
            assert a.run_step(NOW) is None
        finally:
            for lock in locks:
                lock.close()
        assert not stale.exists() and b.swept == 1
        rows = [e for e in audit.iter_all() if e.action == "calllog.purge"]
        assert [(e.target, json.loads(e.details)["utterances"]) for e in rows] == [("channel:a", 3)]
