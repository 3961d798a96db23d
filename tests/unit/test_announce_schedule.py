"""Scheduled announcements: parsing, next fire times, and the scheduler with a fake clock on a
real database (fires once across a restart and across two processes; a late fire is missed)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.backends import BACKENDS
from voice_server.announce.request import AnnounceError, AnnounceRequest
from voice_server.announce.schedule import LATE_MS, due, next_fire, parse_schedule
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.announce.scheduler import Scheduler
from voice_server.announce.store import Announcement
from voice_server.backends.seam import open_database

TOKYO = ZoneInfo("Asia/Tokyo")


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=TOKYO).timestamp() * 1000)


NOW = ms("2026-12-22T10:00")  # a Tuesday


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ({"at": "2026-12-21T17:00"}, "schedule_in_past"),
        ({"at": "yesterday"}, "bad_schedule"),
        ({"at": "2026-12-24T17:00", "timezone": "Mars/Olympus"}, "unknown_timezone"),
        ({"daily_at": "25:00"}, "bad_schedule"),
        ({"daily_at": "17:00", "days": ["mon", "someday"]}, "bad_schedule"),
        ({"daily_at": "17:00", "days": []}, "bad_schedule"),
        ({"at": "2026-12-24T17:00", "daily_at": "17:00"}, "bad_schedule"),
        ({"at": "2026-12-24T17:00", "every": 3}, "bad_schedule"),
        ("17:00", "bad_schedule"),
    ],
)
def test_bad_schedules_are_refused_with_a_code(raw: Any, code: str) -> None:
    with pytest.raises(AnnounceError) as err:
        parse_schedule(raw, "Asia/Tokyo", NOW)
    assert err.value.code == code and 400 <= err.value.status < 500


def test_times_are_in_the_display_time_zone_and_daily_ones_follow_the_days() -> None:
    once = parse_schedule({"at": "2026-12-24T17:00"}, "Asia/Tokyo", NOW)
    assert once.at_ms == ms("2026-12-24T17:00") and once.as_json()["at"] == "2026-12-24T17:00+09:00"
    assert next_fire(once, NOW) == once.at_ms and next_fire(once, once.at_ms) is None
    utc = parse_schedule({"at": "2026-12-24T08:00", "timezone": "UTC"}, "Asia/Tokyo", NOW)
    assert utc.at_ms == once.at_ms
    daily = parse_schedule({"daily_at": "17:00", "days": ["mon", "WED"]}, "Asia/Tokyo", NOW)
    assert daily.days == ("mon", "wed")
    assert next_fire(daily, NOW) == ms("2026-12-23T17:00")  # Tuesday -> Wednesday
    assert next_fire(daily, ms("2026-12-23T17:00")) == ms("2026-12-28T17:00")  # -> Monday
    every = parse_schedule({"daily_at": "09:30"}, "Asia/Tokyo", NOW)
    assert next_fire(every, NOW) == ms("2026-12-23T09:30")
    assert due(NOW, NOW - 1) == "wait" and due(NOW, NOW + LATE_MS) == "fire"
    assert due(NOW, NOW + LATE_MS + 1) == "missed"


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def _fire_log(played: list[tuple[str, str]]) -> Any:
    async def fire(author: str, name: str, request: AnnounceRequest) -> Announcement:
        played.append((author, request.text))
        return Announcement(
            f"{len(played):019d}", author, name, request.text, "ja", False, 1, "playing", "",
            1.0, None, 0,
        )  # fmt: skip

    return fire


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_daily_schedule_fires_once_across_a_restart_and_two_processes_and_a_late_one_is_missed(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    req = AnnounceRequest("避難所Aは17時に閉鎖します", ("shelter-a",))
    daily = parse_schedule({"daily_at": "17:00", "days": ["tue", "wed"]}, "Asia/Tokyo", NOW)
    first = next_fire(daily, NOW)
    assert first == ms("2026-12-22T17:00")

    url = request.getfixturevalue("pg_server").new_database() if backend == "postgres" else None

    async def run() -> None:
        played: list[tuple[str, str]] = []
        db = open_database(url, tmp_path)
        ScheduleStore(db).create(
            Scheduled("1766390400000abcdef", "tanaka", "田中", req, daily, first, "active", NOW)
        )
        db.close()
        clock = Clock(NOW)
        # "restart": new stores on the same database, two of them (two processes)
        db1, db2 = open_database(url, tmp_path), open_database(url, tmp_path)
        try:
            a = Scheduler(ScheduleStore(db1), _fire_log(played), clock)
            b = Scheduler(ScheduleStore(db2), _fire_log(played), clock)
            assert await a.tick() == [] and played == []  # not yet
            clock.now = first + 2000
            results = await asyncio.gather(a.tick(), b.tick())
            assert sorted(len(r) for r in results) == [0, 1] and len(played) == 1
            assert await a.tick() == [] and len(played) == 1  # never twice
            s = ScheduleStore(db1).get("1766390400000abcdef")
            assert s is not None and s.next_ms == ms("2026-12-23T17:00")
            assert [(f.status, f.announcement_id) for f in s.fires] == [("played", "1".zfill(19))]
            # the server was down over Wednesday's fire: found 6 min late, missed, not played
            clock.now = ms("2026-12-23T17:06")
            assert await b.tick() == [("1766390400000abcdef", ms("2026-12-23T17:00"), "missed")]
            assert len(played) == 1
            s = ScheduleStore(db1).get("1766390400000abcdef")
            assert s is not None and s.fires[0].status == "missed"
            assert s.next_ms == ms("2026-12-29T17:00")  # next Tuesday
            assert ScheduleStore(db1).cancel(s.id, clock.now)
            clock.now = ms("2026-12-29T17:00")
            assert await a.tick() == []
        finally:
            db1.close()
            db2.close()

    asyncio.run(run())


def test_a_tick_claims_nothing_while_another_node_holds_the_schedulers_lock(
    pg_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: a tick claims the due fires under the job lock; while another node holds it
    the tick claims nothing (the fire stays due) and plays nothing; the next tick fires it."""
    from voice_server.announce.scheduler import JOB
    from voice_server.store.job_lock import PgJobLocks

    req = AnnounceRequest("点呼を始めます", ("shelter-a",))
    once = parse_schedule({"at": "2026-12-22T17:00"}, "Asia/Tokyo", NOW)
    due_ms = ms("2026-12-22T17:00")
    db = open_database(pg_url, tmp_path)
    ScheduleStore(db).create(
        Scheduled("1766390400000abcdee", "tanaka", "田中", req, once, due_ms, "active", NOW)
    )
    mine, other = PgJobLocks(pg_url), PgJobLocks(pg_url)
    played: list[tuple[str, str]] = []
    scheduler = Scheduler(ScheduleStore(db), _fire_log(played), Clock(due_ms + 1000), mine)
    try:
        with other.step(JOB) as held:
            assert held
            assert asyncio.run(scheduler.tick()) == [] and played == []
        assert mine.counts.steps == {(JOB, "skipped"): 1}
        assert asyncio.run(scheduler.tick()) == [("1766390400000abcdee", due_ms, "fired")]
        assert played == [("tanaka", "点呼を始めます")]
        assert mine.counts.steps[(JOB, "ran")] == 1
    finally:
        mine.close()
        other.close()
        db.close()
