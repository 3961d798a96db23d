"""Emergencies against a real server, over signaling and REST: the raiser and the channel get
``emergency_update``, the channel's supervisors the alert (with the location); a second raise
is ``emergency_open``; staff cannot cancel someone else's; a supervisor acknowledges and
resolves (the raiser is told); the raiser cancels their own; a listen-only member may raise;
an unacknowledged emergency escalates to every supervisor; every step audited."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.accounts import client, org_server, signin, token
from tests.integration.test_alerts import audit_rows, details, stream
from tests.servers import ServerProcess
from tests.wsclient import Peer
from voice_server.identity.tokens import Audience

pytestmark = pytest.mark.integration
HERE = {"lat": 35.6812, "lon": 139.7671, "accuracy": 12.5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VOICE_EMERGENCY_ESCALATE_SECONDS": "3", "VOICE_EMERGENCY_WINDOW_SECONDS": "4"}
    with org_server(tmp_path_factory.mktemp("emergency"), env) as srv:
        srv.cli("channels", "assign", "ops", "--listener", "ito")
        yield srv


async def joined(server: ServerProcess, name: str, channel: str = "ops") -> Peer:
    peer = await Peer.connect(server.ws_url)
    await peer.join(token(server, name, channel), channel=channel, device_id=f"d-{name}")
    return peer


def api(server: ServerProcess, name: str, channel: str = "ops") -> httpx.Client:
    bearer = token(server, name, channel, aud=Audience.API)
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=20
    )


async def test_an_emergency_is_raised_acknowledged_and_resolved_with_everyone_told(
    server: ServerProcess,
) -> None:
    boss, _ = await stream(server, "boss")
    sato = await joined(server, "sato")
    kato = await joined(server, "kato")
    await sato.send(type="emergency", action="raise", location=HERE, id="r1")
    raised = await sato.expect("emergency_update", state="raised")
    assert (raised["by"], raised["subject"], raised["window_s"], raised["request_id"]) == (
        "sato",
        "sato",
        4.0,
        "r1",
    )
    assert (await kato.expect("emergency_update"))["id"] == raised["id"]
    alert = await boss.next(kind="emergency", id=raised["id"])
    assert (alert["channel"], alert["subject_name"], alert["location"]) == ("ops", "Sato", HERE)

    # a second emergency while one's own is open; a cancel with none open; bad messages
    await sato.send(type="emergency", action="raise", id="r2")
    err = await sato.expect("error", id="r2")
    assert err["code"] == "emergency_open"
    await kato.send(type="emergency", action="cancel", id="c1")
    assert (await kato.expect("error", id="c1"))["code"] == "emergency_none"
    for bad in (
        {"action": "explode"},
        {"action": "raise", "location": {"lat": 91, "lon": 0}},
        {"action": "raise", "location": {"lat": 1}},
        {"action": "raise", "extra": 1},
    ):
        await kato.send(type="emergency", id="b", **bad)
        assert (await kato.expect("error", id="b"))["code"] == "invalid_field", bad
    # staff cancelling someone else's emergency: 403, audited; nothing changed
    with api(server, "kato") as c:
        r = c.post(f"/api/v1/emergencies/{raised['id']}/cancel")
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
    # the supervisor acknowledges, then resolves: the raiser is told each time
    h = {"X-CSRF-Token": boss.csrf}
    assert boss.http.post(f"/api/v1/alerts/{raised['id']}/acknowledge", headers=h).is_success
    acked = await sato.expect("emergency_update", state="acknowledged")
    assert acked["by"] == "boss"
    r = boss.http.post(
        f"/api/v1/alerts/{raised['id']}/resolve",
        json={"resolution": "valid", "note": "救急車を手配"},
        headers=h,
    )
    assert r.status_code == 200
    done = await sato.expect("emergency_update", state="resolved")
    assert (done["by"], done["resolution"]) == ("boss", "valid")
    # resolved: a new one may be raised, and the raiser cancels it (a false alarm)
    await sato.send(type="emergency", action="raise", id="r3")
    again = await sato.expect("emergency_update", state="raised", request_id="r3")
    assert again["id"] != raised["id"]
    await sato.send(type="emergency", action="cancel", id="c2")
    cancelled = await kato.expect("emergency_update", state="resolved", id=again["id"])
    assert (cancelled["by"], cancelled["resolution"]) == ("sato", "false_alarm")
    # a listen-only member may raise one
    ito = await joined(server, "ito")
    await ito.send(type="emergency", action="raise", id="r4")
    assert (await ito.expect("emergency_update", request_id="r4"))["subject"] == "ito"
    await ito.send(type="emergency", action="cancel")
    await ito.expect("emergency_update", state="resolved")
    for p in (sato, kato, ito):
        await p.close()
    await boss.close()

    rows = [(r["actor"], r["action"], r["result"]) for r in audit_rows(server, "alert.raise")]
    assert ("sato", "alert.raise", "ok") in rows and ("ito", "alert.raise", "ok") in rows
    refusals = [r for r in audit_rows(server, "alert.resolve") if r["result"] == "denied"]
    assert [r["actor"] for r in refusals] == ["kato"]
    assert "intact" in server.cli("audit", "verify")


async def test_an_emergency_raised_by_api_escalates_to_every_supervisor_when_unattended(
    server: ServerProcess,
) -> None:
    boss, _ = await stream(server, "boss")  # supervises ops only
    boss2, _ = await stream(server, "boss2")  # supervises hq
    with api(server, "mori", "hq") as c:
        assert c.post("/api/v1/emergencies", json={"channel": "ops"}).status_code == 403
        r = c.post("/api/v1/emergencies", json={"channel": "hq", "location": {"lat": "x"}})
        assert (r.status_code, r.json()["error"]) == (400, "bad_location")
        r = c.post("/api/v1/emergencies", json={"channel": "hq"})
        assert r.status_code == 201, r.text
        alert = r.json()
        assert alert["held"] is False  # mori has no session in hq
        r = c.post("/api/v1/emergencies", json={"channel": "hq"})
        assert (r.status_code, r.json()["error"]) == (409, "emergency_open")
    first = await boss2.next(id=alert["id"])
    assert first["escalated"] is False
    escalated = await boss.next(id=alert["id"], timeout=30)  # ops' supervisor: only now
    assert escalated["escalated"] is True and escalated["state"] == "raised"
    with client(server) as c:  # any supervisor or admin may now handle it
        h = {"X-CSRF-Token": signin(c, "root")}
        items = c.get("/api/v1/alerts", params={"kind": "emergency"}).json()["items"]
        assert alert["id"] in [a["id"] for a in items]
    h = {"X-CSRF-Token": boss.csrf}
    assert boss.http.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=h).is_success
    with api(server, "mori", "hq") as c:  # the raiser cancels their own
        r = c.post(f"/api/v1/emergencies/{alert['id']}/cancel")
        assert r.status_code == 200 and r.json()["resolved"]["resolution"] == "false_alarm"
    # a supervisor of the channel may cancel anyone's emergency there
    with api(server, "sato") as c:
        r = c.post("/api/v1/emergencies", json={"channel": "ops"})
        assert r.status_code == 201
        sato_id = r.json()["id"]
    r = boss.http.post(f"/api/v1/emergencies/{sato_id}/cancel", headers={"X-CSRF-Token": boss.csrf})
    assert r.status_code == 200 and r.json()["resolved"]["note"] == "cancelled by Boss"
    r = boss2.http.post(
        f"/api/v1/emergencies/{sato_id}/cancel", headers={"X-CSRF-Token": boss2.csrf}
    )
    assert r.status_code == 403  # not hq's: refused before its state matters
    await boss.close()
    await boss2.close()
    escalations = audit_rows(server, "alert.escalate")
    assert [(r["actor"], details(r)["channel"]) for r in escalations] == [("system", "hq")]
