"""Scheduled announcements against a real server: bad schedules refused with nothing stored,
a one-off fires after a real restart and is heard, a daily one survives the restart and is
edited and cancelled; only supervisors of all its channels may change it."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.announcing import boss_of_a
from tests.servers import running_server
from tests.voiceclients import start_client

pytestmark = pytest.mark.integration
pytest.importorskip("pyopenjtalk")

TOKYO = ZoneInfo("Asia/Tokyo")


def local(seconds: float) -> str:
    return (
        (datetime.now(TOKYO) + timedelta(seconds=seconds))
        .replace(tzinfo=None)
        .isoformat(timespec="seconds")
    )


def test_schedules_are_checked_survive_a_restart_fire_once_and_can_be_edited_and_cancelled(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("a", "b")) as server:
        headers = boss_of_a(server)
        url = f"{server.url}/api/v1/announcements"

        def post(body: dict[str, Any]) -> httpx.Response:
            return httpx.post(url, json=body, headers=headers, timeout=30)

        def schedules() -> list[dict[str, Any]]:
            r = httpx.get(f"{url}/schedules", headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["items"]
            return items

        text = "避難所Aは17時に閉鎖します"
        for schedule, status, code in [
            ({"at": "2020-01-01T17:00"}, 422, "schedule_in_past"),
            ({"at": "someday"}, 422, "bad_schedule"),
            ({"daily_at": "17:00", "days": ["mon"], "timezone": "Nowhere/Land"}, 422,
             "unknown_timezone"),
            ({"daily_at": "7pm"}, 422, "bad_schedule"),
        ]:  # fmt: skip
            r = post({"text": text, "channels": ["a"], "schedule": schedule})
            assert (r.status_code, r.json()["error"]) == (status, code), r.text
        r = post({"text": text, "channels": ["b"], "schedule": {"daily_at": "17:00"}})
        assert (r.status_code, r.json()["error"]) == (403, "channel_not_supervised")
        r = post({"text": "", "channels": ["a"], "schedule": {"daily_at": "17:00"}})
        assert (r.status_code, r.json()["error"]) == (422, "empty_text")
        assert schedules() == []  # nothing half-stored

        r = post({"text": text, "channels": ["a"], "schedule": {"at": local(25)}})
        assert r.status_code == 201 and r.json()["status"] == "scheduled", r.text
        once = r.json()["id"]
        r = post(
            {"text": "本日の配布は終了", "channels": ["a"],
             "schedule": {"daily_at": "17:00", "days": ["mon", "fri"]}}
        )  # fmt: skip
        assert r.status_code == 201, r.text
        daily = r.json()
        assert daily["schedule"] == {
            "daily_at": "17:00",
            "days": ["mon", "fri"],
            "timezone": "Asia/Tokyo",
        }
        assert daily["next"].endswith("T17:00:00.000+09:00")

        server.stop()  # a real restart: both come back from the database
        server.start()
        listed = {s["id"]: s for s in schedules()}
        assert set(listed) == {once, daily["id"]}
        assert listed[daily["id"]]["next"] == daily["next"]

        listener = start_client(server, tmp_path, "ma", channel="a", duration=60, record=False)
        listener.wait_event("media", state="connected", timeout=45)
        started = listener.wait_event("talk_started", timeout=60, kind="announcement")
        assert started["speaker"]["name"] == "boss"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fired = next(s for s in schedules() if s["id"] == once)
            if fired["fires"] and fired["fires"][0]["status"] != "firing":
                break
            time.sleep(0.3)
        assert fired["status"] == "done" and fired["next"] is None
        assert [f["status"] for f in fired["fires"]] == ["played"]
        ann = httpx.get(f"{url}/{fired['fires'][0]['announcement_id']}", headers=headers)
        assert ann.json()["text"] == text
        listener.proc.terminate()
        listener.wait()

        # edit and cancel the daily one
        r = httpx.patch(
            f"{url}/schedules/{daily['id']}",
            json={"text": "配布は18時まで", "schedule": {"daily_at": "18:00"}},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        assert r.json()["text"] == "配布は18時まで" and r.json()["schedule"]["daily_at"] == "18:00"
        r = httpx.patch(
            f"{url}/schedules/{daily['id']}", json={"schedule": {"at": "2020-01-01T00:00"}},
            headers=headers,
        )  # fmt: skip
        assert (r.status_code, r.json()["error"]) == (422, "schedule_in_past")
        staff = {"Authorization": f"Bearer {server.token('ma', 'a', aud='api')}"}
        r = httpx.delete(f"{url}/schedules/{daily['id']}", headers=staff)
        assert r.status_code in (403, 404)
        r = httpx.delete(f"{url}/schedules/{daily['id']}", headers=headers)
        assert r.json() == {"id": daily["id"], "status": "cancelled"}
        r = httpx.delete(f"{url}/schedules/{daily['id']}", headers=headers)
        assert (r.status_code, r.json()["error"]) == (409, "not_active")


def test_a_schedule_whose_author_lost_the_channel_fails_at_fire_time_and_is_counted(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("a", "b")) as server:
        headers = boss_of_a(server)
        url = f"{server.url}/api/v1/announcements"
        r = httpx.post(
            url,
            json={"text": "点検を始めます", "channels": ["a"], "schedule": {"at": local(6)}},
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        schedule_id = r.json()["id"]
        server.cli("channels", "unassign", "a", "--supervisor", "boss")
        deadline = time.monotonic() + 60
        fires: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not fires:
            # boss no longer sees it: watch the scheduler's metric, then read the database
            metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
            if 'voice_announcement_schedule_fires_total{result="failed"} 1' in metrics:
                fires = [{"status": "failed"}]
            time.sleep(0.3)
        assert fires, "the fire never failed"
        with sqlite3.connect(server.data_dir / "voice.db") as conn:
            row = conn.execute(
                "SELECT status, error, announcement_id FROM announcement_fire "
                "WHERE schedule_id = ?",
                (schedule_id,),
            ).fetchone()
        assert row[0] == "failed" and "supervises none" in row[1] and row[2] is None
