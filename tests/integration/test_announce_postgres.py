"""Announcements on PostgreSQL with real server processes: who heard it is stored (the receipts'
upsert on the table's whole key), and a second node on the same database plays the
announcement's shared clip (it is in the ``clip`` table, not only in the first node's data
directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from tests.announcing import boss_of_a, wait_done
from tests.servers import running_server
from voice_server.identity.keys import KEY_FILE

pytestmark = pytest.mark.integration
pytest.importorskip("pyopenjtalk")


def test_a_second_node_plays_the_announcement_and_reports_who_heard_it(
    pg_url: str, tmp_path: Path
) -> None:
    env = {"VOICE_DATABASE_URL": pg_url}
    for node in ("a", "b"):
        (tmp_path / node).mkdir()
    with running_server(tmp_path / "a", env=env, channels=("a", "b")) as first:
        headers = boss_of_a(first)
        with httpx.Client(headers=headers, timeout=60) as c:
            r = c.post(
                f"{first.url}/api/v1/announcements", json={"text": "訓練です", "channels": ["a"]}
            )
            assert r.status_code == 201, r.text
            ann_id = r.json()["id"]
            done = wait_done(c, first.url, ann_id)
            assert done["status"] == "done", (done, first.log()[-3000:])
            (fate,) = done["channels"]
            assert fate["not_heard"] == ["ma"] and fate["heard"] == []  # nobody was connected
        shutil.copy2(tmp_path / "a" / KEY_FILE, tmp_path / "b" / KEY_FILE)  # one deployment
        with running_server(tmp_path / "b", env=env, channels=()) as second:
            assert not (tmp_path / "b" / "clips").exists()
            with httpx.Client(headers=headers, timeout=60) as c:
                again = c.get(f"{second.url}/api/v1/announcements/{ann_id}").json()
                assert again["channels"] == done["channels"]
                items = c.get(f"{second.url}/api/v1/utterances", params={"channel": "a"}).json()
                (row,) = [u for u in items["items"] if u["kind"] == "announcement"]
                clip = c.get(second.url + row["clip_url"])
                assert clip.status_code == 200 and clip.content[:4] == b"OggS", clip.text
                local = (tmp_path / "a" / "clips" / "_shared" / f"{ann_id}.ogg").read_bytes()
                assert clip.content == local
