"""``serve --workers 2``: the once-per-deployment jobs run once (in the parent): the retention
purge, keyword matching, webhook deliveries, escalation timers and the supervised transcriber.
The media workers load none of their modules (``tests/unit/test_workers_scope.py``); these
tests count what each job did with two workers running: one purge row, one alert and one
delivery per event, one escalation, one committed row per burst."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounts import build_org, client, signin, token
from tests.calllog_seed import seed, utterance
from tests.integration.test_alerts import audit_rows, commit, details
from tests.integration.test_transcription import api_token, metric, utterances
from tests.servers import ServerProcess, free_port, running_server
from tests.speech import SENTENCES, speech_wav
from tests.voiceclients import start_client
from tests.webhook_receiver import receiving
from voice_server.identity.tokens import Audience
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000


def _until(condition: Callable[[], Any], within: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.2)
    return value


def _workers_up(server: ServerProcess) -> int:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(
        1
        for line in text.splitlines()
        if line.startswith("voice_media_worker_up{") and line.endswith(" 1")
    )


def test_the_purge_keyword_alerts_webhooks_and_escalations_run_once_with_two_workers(
    tmp_path: Path,
) -> None:
    build_org(tmp_path)
    db = Database(tmp_path / "voice.db")
    with db.transaction() as conn:
        ChannelStore(db).update(
            conn, "ops", display_name="運用", retention_days=30, legal_hold=False
        )
    db.close()
    old = int(time.time() * 1000) - 31 * DAY_MS
    seed(tmp_path, [utterance(f"古い 報告 {i}", start_ms=old + i) for i in range(3)])
    env = {
        "VOICE_GRACE_SECONDS": "1",
        "VOICE_WORKERS": "2",
        "VOICE_PURGE_INTERVAL_SECONDS": "1",
        "VOICE_EMERGENCY_ESCALATE_SECONDS": "2",
    }
    server = ServerProcess(tmp_path, free_port(), free_port(socket.SOCK_DGRAM), env)
    server.start()
    try:
        _jobs_run_once(server)
    finally:
        server.stop()


def _jobs_run_once(server: ServerProcess) -> None:
    with receiving() as city:
        assert _until(lambda: _workers_up(server) == 2, what="two media workers")
        with client(server) as c:
            h = {"X-CSRF-Token": signin(c, "root")}
            r = c.put("/api/v1/alert-keywords", json={"keywords": ["火事"]}, headers=h)
            assert r.status_code == 200
            events = ["keyword_alert.raised", "emergency.raised"]
            r = c.post("/api/v1/webhooks", json={"url": city.url, "events": events}, headers=h)
            assert r.status_code == 201, r.text
            # keyword matching and its webhook: one alert, one delivery
            fire = utterance("東 門 で 火事 です", speaker="sato")
            commit(server.data_dir, fire)
            city.wait(1)
            # an emergency nobody attends: escalated once, its webhook delivered once
            bearer = token(server, "mori", "hq", aud=Audience.API)
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {bearer}"}
            ) as s:
                r = s.post("/api/v1/emergencies", json={"channel": "hq"})
                assert r.status_code == 201, r.text
            city.wait(2)
            _until(lambda: audit_rows(server, "alert.escalate"), what="the escalation")
            # the purge of the expired rows (every second): once
            _until(lambda: audit_rows(server, "calllog.purge"), what="the purge")
            # a later keyword: its delivery comes after any duplicate of the earlier ones
            later = utterance("二 階 で 火事", speaker="kato")
            commit(server.data_dir, later)
            got = city.wait(3)
        with client(server) as b:  # ops' supervisor
            signin(b, "boss")
            keyword = b.get("/api/v1/alerts", params={"kind": "keyword"}).json()["items"]
        assert _workers_up(server) == 2
    assert sorted(a["utterance"] for a in keyword) == sorted([fire.id, later.id])
    types = sorted(json.loads(body)["type"] for _, body in got)
    assert types == ["emergency.raised", "keyword_alert.raised", "keyword_alert.raised"]
    assert len({h["webhook-id"] for h, _ in got}) == 3 and len(city.got) == 3
    raised = [details(r)["utterance"] for r in audit_rows(server, "alert.raise")
              if "utterance" in details(r)]  # fmt: skip
    assert sorted(raised) == sorted([fire.id, later.id])
    assert [details(r)["channel"] for r in audit_rows(server, "alert.escalate")] == ["hq"]
    delivered = [r for r in audit_rows(server, "webhook.deliver") if r["result"] == "ok"]
    assert len(delivered) == 3
    purges = audit_rows(server, "calllog.purge")
    assert [(r["target"], r["details"]["utterances"]) for r in purges] == [("channel:ops", 3)]


def test_the_supervised_transcriber_commits_each_burst_once_with_two_workers(
    tmp_path: Path,
) -> None:
    env = {"VOICE_WORKERS_PLACEMENT": "round-robin"}
    args = ["--transcriber", "--workers", "2"]
    with running_server(tmp_path / "srv", env=env, extra_args=args) as server:
        _until(lambda: metric(server, "voice_transcription_link_up") == 1, 60, "the sidecar")
        # the listener on worker 0 (the channel's owner: it taps the burst), the talker on
        # worker 1 (its packets relayed to the owner)
        listener = start_client(server, tmp_path, "lis", duration=12, record=False)
        listener.wait_event("media", state="connected", timeout=60)
        wav = speech_wav(tmp_path / "speech.wav", SENTENCES[:1])
        talker = start_client(server, tmp_path, "kim", play=wav, duration=7, record=False)
        talker.wait_event("media", state="connected", timeout=60)
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        for worker in ("0", "1"):
            assert f'voice_media_worker_sessions{{worker="{worker}"}} 1' in text, text
        assert talker.wait(60) == 0, talker.stderr
        assert listener.wait(60) == 0, listener.stderr
        bearer = api_token(server, "ops")

        def kims() -> list[dict[str, Any]]:
            items = utterances(server, bearer).json()["items"]
            return [u for u in items if u["speaker_id"] == "kim"]

        _until(kims, 60, "the utterance")
        spool = server.data_dir / "spool"
        _until(lambda: not any(spool.glob("*.ogg*")), 60, "the spool to drain")
        assert len(kims()) == 1
        assert _workers_up(server) == 2
