"""Webhooks: the Standard Webhooks signature (the spec's own example), event types and payloads
(no transcript text), the retry schedule, URL rules, and the persistent bounded queue with its
dead-letter list, delivered by the dispatcher to a real local HTTP server (3xx never followed)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from tests.backends import BACKENDS
from tests.webhook_receiver import receiving
from voice_server.alerts.model import Alert, AlertKind, AlertState, new_alert_id
from voice_server.audit.log import AuditLog
from voice_server.backends.seam import open_database
from voice_server.store.database import Database
from voice_server.webhooks import rules, sign
from voice_server.webhooks.dispatch import Dispatcher, Outbox
from voice_server.webhooks.rules import WebhookError, check_url, event_types, payload
from voice_server.webhooks.store import WebhookStore


def test_the_signature_is_the_standard_webhooks_example() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    got = sign.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    h = sign.headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sign.verify(secret, h, body, 1614265330 + 60)
    assert not sign.verify(secret, h, body + b" ", 1614265330)
    assert not sign.verify(secret, h, body, 1614265330 + 3600)  # too old: a replay
    assert sign.new_secret().startswith("whsec_") and sign.new_secret() != sign.new_secret()


def alert(kind: AlertKind, **kw: object) -> Alert:
    t = int(time.time() * 1000)
    base: dict[str, object] = {
        "id": new_alert_id(t),
        "kind": kind,
        "channel": "ops",
        "state": AlertState.RAISED,
        "raised_ms": t,
        "raised_by": "system",
        "updated_ms": t,
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_transitions_send_the_event_types_of_the_issue() -> None:
    assert event_types(alert(AlertKind.EMERGENCY), "raised") == ["emergency.raised"]
    assert event_types(alert(AlertKind.EMERGENCY), "resolved") == ["emergency.resolved"]
    assert event_types(alert(AlertKind.EMERGENCY), "acknowledged") == []
    assert event_types(alert(AlertKind.EMERGENCY), "escalated") == []
    assert event_types(alert(AlertKind.KEYWORD), "raised") == ["keyword_alert.raised"]
    assert event_types(alert(AlertKind.KEYWORD), "resolved") == []
    assert event_types(alert(AlertKind.TRANSCRIPTION), "raised") == ["transcription.stopped"]
    body = payload(
        "keyword_alert.raised",
        alert(AlertKind.KEYWORD, keyword="火事", utterance="b1", subject_name="Sato"),
        "2026-01-01T00:00:00+00:00",
        "https://voice.example",
    )
    assert body["data"]["keyword"] == "火事" and body["data"]["utterance_id"] == "b1"
    assert body["data"]["url"].startswith("https://voice.example/dashboard/alerts/")
    assert "text" not in json.dumps(body)


def test_retries_last_about_an_hour_then_stop() -> None:
    assert len(rules.BACKOFF_S) == 10
    assert 55 * 60 <= sum(rules.BACKOFF_S) <= 65 * 60
    assert rules.next_delay(1) == 10 and rules.next_delay(10) == 660
    assert rules.next_delay(11) is None and rules.next_delay(3, (1, 2)) is None


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://example.org/x", "bad_url"),
        ("javascript:alert(1)", "bad_url"),
        ("https://user:pw@example.org/", "bad_url"),
        ("http://127.0.0.1:8000/hook", "self_url"),
        ("http://localhost:8000/", "self_url"),
        ("https://voice.example/hook", "self_url"),
        (5, "bad_url"),
        ("http://[::1", "bad_url"),
    ],
)
def test_endpoint_urls_are_checked(url: object, code: str) -> None:
    own = [("127.0.0.1", 8000), ("voice.example", 443)]
    with pytest.raises(WebhookError) as exc:
        check_url(url, own)
    assert exc.value.code == code


def test_other_endpoints_are_accepted() -> None:
    own = [("127.0.0.1", 8000)]
    assert check_url("http://127.0.0.1:9000/hook", own) == "http://127.0.0.1:9000/hook"
    assert check_url(" https://incident.city.example/h ", own) == "https://incident.city.example/h"


def store_at(
    tmp_path: Path, backend: str = "sqlite", request: pytest.FixtureRequest | None = None
) -> tuple[WebhookStore, Database]:
    url = None
    if backend != "sqlite":
        assert request is not None
        url = request.getfixturevalue("pg_server").new_database()
    db = open_database(url, tmp_path)
    return WebhookStore(db), db


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_queue_is_bounded_persistent_and_dead_letters_overflow(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("pg_server").new_database() if backend != "sqlite" else None
    db = open_database(url, tmp_path)
    store = WebhookStore(db)
    monkeypatch.setattr("voice_server.webhooks.store.MAX_QUEUE", 3)
    with db.transaction() as conn:
        store.add_endpoint(conn, "http://a.example/", ["keyword_alert.raised"], "whsec_AA==",
                           None, "root", 1)  # fmt: skip
        store.add_endpoint(conn, "http://b.example/", ["emergency.raised"], "whsec_AA==", None,
                           "root", 1)  # fmt: skip
    now = int(time.time() * 1000)
    with db.transaction() as conn:
        assert [store.enqueue(conn, f"m{i}", "keyword_alert.raised", "{}", now) for i in range(5)]\
            == [1, 1, 1, 0, 0]  # fmt: skip
        assert store.enqueue(conn, "m1", "keyword_alert.raised", "{}", now) == 0  # a repeat
    assert store.counts() == {"queued": 3, "dead": 2} and store.overflow == 2
    assert {d.last_error for d in store.list("dead")} == {"overflow"}
    db.close()
    db2 = open_database(url, tmp_path)  # a restart: the queue is still there
    again = WebhookStore(db2)
    claimed = again.claim_due(now + 1)
    assert len(claimed) == 3 and again.claim_due(now + 1) == []  # leased
    with db2.transaction() as conn:
        assert not again.redeliver(conn, store.list("dead")[0].id, now)  # the queue is full
    db2.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_dispatcher_signs_retries_refuses_redirects_and_dead_letters(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store, db = store_at(tmp_path, backend, request)
    audit = AuditLog(db)
    secret = sign.new_secret()
    with receiving() as good, receiving() as bad:
        bad.statuses = [302]
        bad.location = good.url
        with db.transaction() as conn:
            ep_good = store.add_endpoint(conn, good.url, ["emergency.raised"], secret, None,
                                         "root", 1)  # fmt: skip
            store.add_endpoint(conn, bad.url, ["emergency.raised"], secret, None, "root", 1)
            Outbox(store, None).on_alert(conn, alert(AlertKind.EMERGENCY), "raised")
        dispatcher = Dispatcher(store, audit, backoff=(0,))
        outcomes = sorted(dispatcher.deliver(d) for d in store.claim_due(int(time.time() * 1e3)))
        assert outcomes == ["delivered", "retry"]
        assert [dispatcher.deliver(d) for d in store.claim_due(int(time.time() * 1e3))] == ["dead"]
        ((headers, body),) = good.got  # the redirect was never followed
        assert len(bad.got) == 2
        assert sign.verify(secret, headers, body, int(time.time()))
        assert json.loads(body)["type"] == "emergency.raised"
        assert headers["webhook-id"].startswith("msg_")
    (dead,) = store.list("dead")
    assert dead.last_status == 302 and dead.endpoint_id != ep_good.id
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT result FROM audit_log WHERE action = 'webhook.deliver' ORDER BY seq"
        ).fetchall()
    assert sorted(r[0] for r in rows) == ["failed", "failed", "ok"]
    db.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_endpoint_gets_its_events_in_order_and_a_slow_one_holds_no_other(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each endpoint's deliveries go one at a time in queue order (raised before resolved, even
    when the receiver answers the first ones slowly); another endpoint is served meanwhile."""
    store, db = store_at(tmp_path, backend, request)
    audit = AuditLog(db)
    secret = sign.new_secret()
    events = ["emergency.raised", "emergency.resolved"]
    with receiving() as slow, receiving() as quick:
        slow.slow = {n: 0.05 * (9 - n) for n in range(1, 9)}  # earlier requests answer later
        with db.transaction() as conn:
            store.add_endpoint(conn, slow.url, events, secret, None, "root", 1)
        alerts = [alert(AlertKind.EMERGENCY) for _ in range(4)]
        for a in alerts:
            for transition in ("raised", "resolved"):
                with db.transaction() as conn:
                    Outbox(store, None).on_alert(conn, a, transition)
        with db.transaction() as conn:  # the slow endpoint gets it too, last
            store.add_endpoint(conn, quick.url, events, secret, None, "root", 1)
            alerts.append(alert(AlertKind.EMERGENCY))
            Outbox(store, None).on_alert(conn, alerts[-1], "raised")

        async def run() -> None:
            dispatcher = Dispatcher(store, audit, backoff=(0,))
            dispatcher.start()
            try:
                await asyncio.to_thread(slow.wait, 9)
            finally:
                await dispatcher.stop()

        asyncio.run(run())
        got = [json.loads(body) for _, body in slow.got]
        assert [(e["data"]["alert_id"], e["type"]) for e in got] == [
            (a.id, t) for a in alerts[:4] for t in events
        ] + [(alerts[4].id, events[0])]
        assert len(quick.got) == 1  # not after the slow endpoint's queue: meanwhile
        assert slow.arrived == 9
    db.close()
