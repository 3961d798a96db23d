"""Signed webhooks against a real server: an admin registers an HTTPS receiver trusted through
its own test CA (``ca_file``); a spoken keyword and an emergency reach it correctly signed
(Standard Webhooks); a failing receiver (a redirect, never followed) is retried, then
dead-lettered, and an admin redelivers it; bad registrations are refused and nothing is
stored; every delivery is audited."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.accounts import client, form_csrf, org_server, signin, token
from tests.calllog_seed import utterance
from tests.integration.test_alerts import audit_rows, commit, details
from tests.servers import ServerProcess
from tests.tlsca import issue_certificate
from tests.webhook_receiver import Receiver, receiving
from voice_server.identity.tokens import Audience
from voice_server.webhooks import sign

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VOICE_WEBHOOK_BACKOFF_SECONDS": "[1, 1, 1]"}
    with org_server(tmp_path_factory.mktemp("webhooks"), env) as srv:
        with client(srv) as c:
            h = {"X-CSRF-Token": signin(c, "root")}
            r = c.put("/api/v1/alert-keywords", json={"keywords": ["火事", "不審者"]}, headers=h)
            assert r.status_code == 200
        yield srv


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[tuple[httpx.Client, dict[str, str]]]:
    with client(server) as c:
        yield c, {"X-CSRF-Token": signin(c, "root")}


def register(admin: Any, url: str, events: list[str], ca: Path | None = None) -> dict[str, Any]:
    c, h = admin
    body: dict[str, Any] = {"url": url, "events": events}
    if ca is not None:
        body["ca_file"] = str(ca)
    r = c.post("/api/v1/webhooks", json=body, headers=h)
    assert r.status_code == 201, r.text
    return dict(r.json())


def bodies(receiver: Receiver, n: int, secret: str) -> list[dict[str, Any]]:
    out = []
    for headers, body in receiver.wait(n):
        assert sign.verify(secret, headers, body, int(time.time())), headers
        out.append(json.loads(body))
    return out


def test_registrations_are_checked_and_admins_only(
    server: ServerProcess, admin: Any, tmp_path: Path
) -> None:
    c, h = admin
    for body, code in (
        ({"url": "ftp://x.example/", "events": ["emergency.raised"]}, "bad_url"),
        ({"url": server.url + "/hook", "events": ["emergency.raised"]}, "self_url"),
        ({"url": "http://127.0.0.1:1/h", "events": ["emergency.cancelled"]}, "bad_events"),
        ({"url": "http://127.0.0.1:1/h", "events": []}, "bad_events"),
        (
            {"url": "https://x.example/", "events": ["emergency.raised"], "ca_file": "/nope.pem"},
            "bad_ca_file",
        ),
    ):
        r = c.post("/api/v1/webhooks", json=body, headers=h)
        assert (r.status_code, r.json()["error"]) == (400, code), body
    assert c.post("/api/v1/webhooks", json={"url": "http://a.example/"}).status_code == 403
    assert c.get("/api/v1/webhooks").json()["items"] == []
    with client(server) as boss:
        hb = {"X-CSRF-Token": signin(boss, "boss")}
        r = boss.post(
            "/api/v1/webhooks",
            json={"url": "http://a.example/", "events": ["emergency.raised"]},
            headers=hb,
        )
        assert r.status_code == 403
        assert boss.get("/api/v1/webhooks/dead-letters").status_code == 403


def test_keywords_and_emergencies_reach_an_https_receiver_signed(
    server: ServerProcess, admin: Any, tmp_path: Path
) -> None:
    chain, key = issue_certificate(tmp_path, ["localhost"])
    with receiving((chain, key), host="localhost") as city:
        ep = register(
            admin,
            city.url,
            ["keyword_alert.raised", "emergency.raised", "emergency.resolved"],
            tmp_path / "ca.pem",
        )
        assert ep["secret"].startswith("whsec_")
        listed = admin[0].get("/api/v1/webhooks").json()["items"]
        assert [e["id"] for e in listed] == [ep["id"]] and "secret" not in listed[0]
        u = utterance("裏口 に 不審者 が います", speaker="sato")
        commit(server.data_dir, u)
        (event,) = bodies(city, 1, ep["secret"])
        assert event["type"] == "keyword_alert.raised"
        assert (event["data"]["keyword"], event["data"]["utterance_id"]) == ("不審者", u.id)
        assert "裏口" not in json.dumps(event, ensure_ascii=False)  # no transcript text
        bearer = token(server, "sato", "ops", aud=Audience.API)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {bearer}"}) as s:
            where = {"lat": 35.0, "lon": 139.0}
            r = s.post("/api/v1/emergencies", json={"channel": "ops", "location": where})
            assert r.status_code == 201
            alert_id = r.json()["id"]
            assert s.post(f"/api/v1/emergencies/{alert_id}/cancel").status_code == 200
        events = bodies(city, 3, ep["secret"])
        assert [e["type"] for e in events[1:]] == ["emergency.raised", "emergency.resolved"]
        assert events[1]["data"]["location"] == {"lat": 35.0, "lon": 139.0}
        assert events[2]["data"]["resolution"] == "false_alarm"
        ids = [h["webhook-id"] for h, _ in city.got]
        assert len(set(ids)) == 3
        c, h = admin
        assert c.delete(f"/api/v1/webhooks/{ep['id']}", headers=h).status_code == 204
    delivered = [details(r) for r in audit_rows(server, "webhook.deliver") if r["result"] == "ok"]
    assert {d["event_type"] for d in delivered} >= {"keyword_alert.raised", "emergency.raised"}


def test_a_failing_receiver_is_retried_dead_lettered_and_redelivered(
    server: ServerProcess, admin: Any
) -> None:
    with receiving() as elsewhere, receiving() as flaky:
        flaky.statuses = [302]  # a redirect is a failure, never followed
        flaky.location = elsewhere.url
        ep = register(admin, flaky.url, ["keyword_alert.raised"])
        commit(server.data_dir, utterance("三 階 で 火事", speaker="kato"))
        flaky.wait(4)  # the first try and three retries
        c, h = admin
        deadline = time.monotonic() + 30
        dead: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not dead:
            items = c.get("/api/v1/webhooks/dead-letters").json()["items"]
            dead = [d for d in items if d["endpoint_id"] == ep["id"]]
            time.sleep(0.2)
        assert dead and dead[0]["attempts"] == 4 and dead[0]["last_status"] == 302
        assert elsewhere.got == []
        flaky.statuses = [302, 302, 302, 302, 200]
        r = c.post(f"/api/v1/webhooks/deliveries/{dead[0]['id']}/redeliver", headers=h)
        assert r.status_code == 200
        (_, body) = flaky.wait(5)[-1]
        assert json.loads(body)["type"] == "keyword_alert.raised"
        r = c.post(f"/api/v1/webhooks/deliveries/{dead[0]['id']}/redeliver", headers=h)
        assert r.status_code == 404  # delivered now: nothing dead to redeliver
        c.delete(f"/api/v1/webhooks/{ep['id']}", headers=h)
    attempts = [
        details(r)["outcome"]
        for r in audit_rows(server, "webhook.deliver")
        if r["target"] == f"webhook:{ep['id']}"
    ]
    assert attempts == ["retry", "retry", "retry", "dead", "delivered"]
    assert [r["actor"] for r in audit_rows(server, "webhook.redeliver")] == ["root"]
    assert "intact" in server.cli("audit", "verify")


def test_the_dashboard_page_registers_shows_the_secret_once_and_removes(
    server: ServerProcess, admin: Any
) -> None:
    c, _ = admin
    page = c.get("/dashboard/webhooks")
    assert page.status_code == 200
    csrf = form_csrf(page.text)
    url = "https://incident.example/hook?<script>alert(1)</script>"
    r = c.post(
        "/dashboard/webhooks",
        data={"url": url, "events": ["emergency.raised", "transcription.stopped"], "csrf": csrf},
    )
    assert r.status_code == 201
    assert 'id="webhook-secret">whsec_' in r.text
    assert "&lt;script&gt;" in r.text and "<script>alert(1)" not in r.text
    listed = c.get("/dashboard/webhooks")
    assert "whsec_" not in listed.text  # shown once
    (ep,) = [e for e in c.get("/api/v1/webhooks").json()["items"] if e["url"] == url]
    bad = c.post("/dashboard/webhooks", data={"url": "ftp://x/", "events": [], "csrf": csrf})
    assert bad.status_code == 400
    r = c.post(f"/dashboard/webhooks/{ep['id']}/remove", data={"csrf": csrf})
    assert r.status_code in (200, 303)
    assert all(e["id"] != ep["id"] for e in c.get("/api/v1/webhooks").json()["items"])
    with client(server) as boss:
        signin(boss, "boss")
        assert boss.get("/dashboard/webhooks").status_code == 403


def test_a_played_announcement_is_sent_to_the_webhooks_that_take_it(
    server: ServerProcess, admin: Any
) -> None:
    pytest.importorskip("pyopenjtalk")
    text = "避難所Aは17時に閉鎖します"
    with receiving() as hq, receiving() as other:
        ep = register(admin, hq.url, ["announcement.sent"])
        register(admin, other.url, ["emergency.raised"])
        with client(server) as c:
            h = {"X-CSRF-Token": signin(c, "boss")}
            r = c.post("/api/v1/announcements", json={"text": text, "channels": ["ops"]}, headers=h)
            assert r.status_code == 201, r.text
            ann_id = r.json()["id"]
        (event,) = bodies(hq, 1, ep["secret"])
        assert not other.got  # only endpoints taking announcement.sent
    assert event["type"] == "announcement.sent"
    data = event["data"]
    assert (data["announcement_id"], data["author"], data["channels"]) == (ann_id, "boss", ["ops"])
    assert data["text"] == text and data["urgent"] is False
