"""The alert store and service on SQLite and PostgreSQL: transitions audited in their own
commit, dedupe keys, filters, the alert event sequence, keyword lists, and keyword matching from
the commit event sequence (once per deployment, gaps never alert)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends import BACKENDS, database
from tests.calllog_seed import utterance
from voice_server.alerts.keywords import parse_list
from voice_server.alerts.model import (
    Alert,
    AlertError,
    AlertKind,
    AlertState,
    Resolution,
    new_alert_id,
)
from voice_server.alerts.service import AlertService, Handler
from voice_server.alerts.store import DEPLOYMENT, AlertFilter, AlertStore
from voice_server.audit.log import AuditLog
from voice_server.backends.seam import open_call_log
from voice_server.calllog.model import Gap

BOSS = Handler("boss", "Boss", "supervisor", "127.0.0.1")


@pytest.fixture(params=BACKENDS)
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertService]:
    with database(request.param, tmp_path, request) as db:
        calllog = open_call_log(getattr(db, "pg_url", None), tmp_path, db)
        yield AlertService(AlertStore(db), AuditLog(db), calllog)


def emergency(user: str = "sato", channel: str = "ops") -> Alert:
    t = int(time.time() * 1000)
    return Alert(
        id=new_alert_id(t),
        kind=AlertKind.EMERGENCY,
        channel=channel,
        state=AlertState.RAISED,
        raised_ms=t,
        raised_by=user,
        subject=user,
        subject_name=user.title(),
        detail={"location": {"lat": 35.0, "lon": 139.0}},
        dedupe=f"emergency:{user}",
        updated_ms=t,
    )


def audit_actions(svc: AlertService) -> list[tuple[str, str, str]]:
    with svc.store.db.connection() as conn:
        rows = conn.execute("SELECT actor, action, result FROM audit_log ORDER BY seq").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def test_every_transition_is_stored_audited_and_sequenced(svc: AlertService) -> None:
    a = svc.raise_alert(emergency(), "sato")
    assert a is not None
    assert svc.raise_alert(emergency(), "sato") is None  # one open emergency per user
    acked = svc.acknowledge(a.id, BOSS)
    assert acked.state is AlertState.ACKNOWLEDGED and acked.acked_by == "boss"
    with pytest.raises(AlertError) as exc:
        svc.acknowledge(a.id, BOSS)
    assert exc.value.code == "alert_state"
    done = svc.resolve(a.id, BOSS, Resolution.VALID, "<b>ok</b>")
    got = svc.store.get(a.id)
    assert got == done and got.note == "<b>ok</b>" and got.detail["location"]["lat"] == 35.0
    assert audit_actions(svc) == [
        ("sato", "alert.raise", "ok"),
        ("boss", "alert.acknowledge", "ok"),
        ("boss", "alert.acknowledge", "failed"),
        ("boss", "alert.resolve", "ok"),
    ]
    events = svc.store.events_after(0)
    assert [i for _, i in events] == [a.id, a.id, a.id]
    assert svc.raise_alert(emergency(), "sato") is not None  # resolved: a new one may be raised
    with pytest.raises(AlertError) as exc:
        svc.acknowledge("0" * 24, BOSS)
    assert exc.value.code == "not_found"


def test_filters_scope_kind_state_and_time(svc: AlertService) -> None:
    ops = svc.raise_alert(emergency("sato", "ops"), "sato")
    hq = svc.raise_alert(emergency("mori", "hq"), "mori")
    assert ops and hq
    svc.resolve(hq.id, BOSS, Resolution.FALSE_ALARM, "")
    svc.transcription_once("stopped")

    def ids(f: AlertFilter) -> list[str]:
        return [a.id for a in svc.store.find(f)]

    assert set(ids(AlertFilter(channels=frozenset({"ops"})))) == {
        ops.id,
        svc.store.by_dedupe("transcription").id,  # type: ignore[union-attr]
    }
    assert ids(AlertFilter(channels=frozenset({"ops"}), include_deployment=False)) == [ops.id]
    assert ids(AlertFilter(channels=frozenset(), include_deployment=False)) == []
    assert ids(AlertFilter(state=AlertState.RESOLVED)) == [hq.id]
    assert len(ids(AlertFilter(open_only=True))) == 2
    assert ids(AlertFilter(kind=AlertKind.TRANSCRIPTION, open_only=True)) != []
    assert ids(AlertFilter(since_ms=int(time.time() * 1000) + 60_000)) == []
    svc.escalate(ops.id)
    escalated = AlertFilter(
        channels=frozenset({"hq"}), include_deployment=False, escalated_too=True
    )
    assert set(ids(escalated)) == {ops.id, hq.id}


def test_a_transcription_alert_is_raised_once_and_resolved_when_it_is_up(
    svc: AlertService,
) -> None:
    first = svc.transcription_once("stopped")
    assert first is not None and first.kind is AlertKind.TRANSCRIPTION and first.channel == ""
    assert svc.transcription_once("stopped") is None
    assert svc.transcription_once("degraded") is None
    up = svc.transcription_once("up")
    assert up is not None and up.state is AlertState.RESOLVED and up.resolved_by == "system"
    assert svc.transcription_once("stopped") is not None  # a new stop, a new alert


def test_keyword_lists_replace_whole_per_scope(svc: AlertService) -> None:
    with svc.store.db.transaction() as conn:
        svc.store.set_keywords(conn, DEPLOYMENT, parse_list(["火事", "救急"]))
        svc.store.set_keywords(conn, "ops", parse_list(["ガス漏れ"]))
    with svc.store.db.transaction() as conn:
        svc.store.set_keywords(conn, DEPLOYMENT, parse_list(["不審者", "火事"]))
    lists = svc.store.keywords()
    assert [k.text for k in lists[DEPLOYMENT]] == ["不審者", "火事"]
    assert [k.text for k in lists["ops"]] == ["ガス漏れ"]
    assert list(svc.store.keywords("hq")) == []


def commit(svc: AlertService, *items: Any) -> None:
    log: Any = svc.calllog
    for u in items:
        if isinstance(u, Gap):
            log.add_gap(u, created_ms=int(time.time() * 1000))
        else:
            log.add_utterance(u, committed_ms=int(time.time() * 1000))


def test_keyword_matching_reads_the_commit_sequence_once_per_deployment(
    svc: AlertService, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    assert svc.match_once() == 0  # the first run places the cursor at the end
    with svc.store.db.transaction() as conn:
        svc.store.set_keywords(conn, DEPLOYMENT, parse_list(["火事", "救急"]))
        svc.store.set_keywords(conn, "hq", parse_list(["ガス漏れ"]))
    now = int(time.time() * 1000)
    fire = utterance("東 門 で 火事 です 救急 を", start_ms=now)
    gas_ops = utterance("ガス 漏れ", start_ms=now + 1)  # ops has no gas keyword
    gas_hq = utterance("ガス漏れです", channel="hq", speaker="mori", start_ms=now + 2)
    gap = Gap(
        id=utterance("x", start_ms=now + 3).id,
        channel="ops",
        speaker_id="sato",
        speaker_name="Sato",
        start_ms=now + 3,
        end_ms=now + 4,
        reason="hallucination",
    )
    commit(svc, fire, gas_ops, gas_hq, gap)
    other = AlertService(svc.store, svc.audit, svc.calllog)  # a second process or node
    assert svc.match_once() == 3 and other.match_once() == 0
    alerts = svc.store.find(AlertFilter(kind=AlertKind.KEYWORD))
    got = sorted((a.utterance, a.keyword, a.channel, a.subject_name) for a in alerts)
    assert got == sorted(
        [
            (fire.id, "火事", "ops", "Sato"),
            (fire.id, "救急", "ops", "Sato"),
            (gas_hq.id, "ガス漏れ", "hq", "Mori"),
        ]
    )
    # the same utterance matched again (a cursor reset) raises nothing new
    with svc.store.db.transaction() as conn:
        svc.store.set_cursor(conn, "keywords", 0)
    other.match_once()
    assert len(svc.store.find(AlertFilter(kind=AlertKind.KEYWORD))) == 3
    raises = [a for a in audit_actions(svc) if a[1] == "alert.raise"]
    assert raises == [("system", "alert.raise", "ok")] * 3


def test_on_postgres_notify_wakes_another_nodes_matcher_and_feed(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node B polls only once an hour here: an alert raised on node A and a commit with a keyword
    by another writer reach it through NOTIFY alone (SQLite keeps polling as before)."""
    import asyncio

    from voice_server.alerts import service as service_module
    from voice_server.backends.seam import open_database, open_notifications

    monkeypatch.setattr(service_module, "NOTIFIED_POLL_S", 3600.0)
    db_a, db_b = open_database(pg_url, tmp_path), open_database(pg_url, tmp_path)
    log_a = open_call_log(pg_url, tmp_path, db_a)
    node_a = AlertService(AlertStore(db_a), AuditLog(db_a), log_a)
    node_b = AlertService(AlertStore(db_b), AuditLog(db_b), open_call_log(pg_url, tmp_path, db_b))
    node_b.notifications = open_notifications(db_b)
    with db_a.transaction() as conn:
        node_a.store.set_keywords(conn, DEPLOYMENT, parse_list(["火事"]))

    async def scenario() -> None:
        await node_b.start()
        try:
            assert node_b.feed.poll_seconds == node_b.match_poll_s == 3600.0
            seen = node_b.feed.subscribe(lambda alert: True)
            await asyncio.to_thread(node_b.match_once)  # the cursor placed, as on any start
            raised = await asyncio.to_thread(node_a.raise_alert, emergency())
            assert raised is not None
            await asyncio.wait_for(seen.wake.wait(), 60)
            assert [a.id for a in seen.queue] == [raised.id]
            seen.queue.clear()
            seen.wake.clear()
            now = int(time.time() * 1000)
            await asyncio.to_thread(
                log_a.add_utterance, utterance("火事 です", start_ms=now), committed_ms=now
            )
            await asyncio.wait_for(seen.wake.wait(), 60)  # B's matcher raised it, B's feed saw it
            assert [a.kind for a in seen.queue] == [AlertKind.KEYWORD]
            # the feed may hear the NOTIFY before the matcher's thread counts what it raised
            deadline = time.monotonic() + 60
            while node_b.matched != 1 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            assert node_b.matched == 1
        finally:
            await node_b.stop()

    try:
        asyncio.run(scenario())
        assert node_b.notifications.received >= 2
    finally:
        db_a.close()
        db_b.close()
