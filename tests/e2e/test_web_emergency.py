"""An emergency from the phone app to a supervisor's dashboard, both in Debian's Chromium
(private network namespace): holding the red control 2 s starts a 5 s countdown that one tap
cancels (nothing is raised); held again and left to run, the emergency (with the location the
user opted in to send) appears in the supervisor's banner within seconds with its sound
(``--autoplay-policy=no-user-gesture-required``); the supervisor acknowledges from the banner
and resolves it on its page, the phone is told each time, and every step is in the audit log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.accounts import build_org
from tests.e2e.conftest import device_link, wait_for
from tests.e2e.test_dashboard_alerts import banner_items, page_of
from tests.e2e.test_web_client import connected
from tests.servers import ServerProcess, free_port
from voice_server.bench.browser import launch_chromium

pytestmark = pytest.mark.e2e
HERE = {"latitude": 35.6812, "longitude": 139.7671, "accuracy": 20}


@pytest.fixture(scope="module")
def org(namespace: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("e2e-emergency")
    build_org(data)
    srv = ServerProcess(data, free_port(), free_port(2), {"VOICE_GRACE_SECONDS": "4"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def phone(pw: Any, server: ServerProcess) -> Any:
    browser = launch_chromium(pw)
    context = browser.new_context(
        locale="en-US", geolocation=HERE, permissions=["geolocation", "microphone"]
    )
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(device_link(server, server.token("sato", "ops")))
    return page


def hold_emergency(page: Any) -> None:
    """The user presses the red control and keeps it down past 2 s (their hold, not a wait)."""
    page.hover("#emergency")
    page.mouse.down()
    page.wait_for_selector("#emergency-countdown:not([hidden])", timeout=10_000)
    page.mouse.up()


def audit(server: ServerProcess) -> list[tuple[str, str]]:
    out = json.loads(server.cli("audit", "export", "--format", "json"))
    rows = out if isinstance(out, list) else out["entries"]
    return [(r["actor"], r["action"]) for r in rows if r["action"].startswith("alert.")]


def test_an_emergency_from_the_phone_reaches_the_supervisor_who_handles_it(
    pw: Any, org: ServerProcess
) -> None:
    boss = page_of(pw, org, "boss", autoplay=True)
    sato = phone(pw, org)
    try:
        wait_for(lambda: sato.is_visible("#emergency"), "the emergency control in the call")
        wait_for(lambda: connected(sato), "the call with media", timeout=60)
        sato.check("#emergency-location")
        where = sato.evaluate(
            "new Promise(r => navigator.geolocation.getCurrentPosition("
            "p => r([p.coords.latitude, p.coords.longitude]), e => r(String(e.message))))"
        )
        assert where == [HERE["latitude"], HERE["longitude"]], where
        # a hold, then one tap on the countdown: nothing is raised
        hold_emergency(sato)
        assert "Sending an emergency in" in (sato.text_content("#emergency-count") or "")
        sato.click("#emergency-countdown")
        wait_for(lambda: sato.get_attribute("#emergency-state", "data-state") == "cancelled",
                 "the cancelled countdown")  # fmt: skip
        time.sleep(6)  # longer than the countdown: prove that nothing is sent
        assert boss.is_hidden("#alert-banner") and audit(org) == []
        # held again and left to run: raised
        hold_emergency(sato)
        wait_for(lambda: sato.get_attribute("#emergency-state", "data-state") == "raised",
                 "the server's emergency_update", timeout=20)  # fmt: skip
        t0 = time.monotonic()
        assert sato.evaluate("document.body.dataset.emergencyWindow") == "open"
        boss.wait_for_selector("#alert-list li.kind-emergency[data-state=raised]", timeout=20_000)
        print(f"emergency on the dashboard {time.monotonic() - t0:.2f} s after the phone saw it")
        (item,) = banner_items(boss)
        assert item["subject"] == "Sato"
        boss.wait_for_function(
            "document.getElementById('alert-banner').dataset.sound === 'playing'"
        )
        boss.click(f"#alert-list li[data-id='{item['id']}'] button.alert-ack")
        wait_for(lambda: sato.get_attribute("#emergency-state", "data-state") == "acknowledged",
                 "the acknowledgement on the phone")  # fmt: skip
        assert "Boss" in (sato.text_content("#emergency-state") or "") or "boss" in (
            sato.text_content("#emergency-state") or ""
        )
        boss.goto(f"{org.url}/dashboard/alerts/{item['id']}")
        assert boss.text_content("#alert .location").startswith("35.6812, 139.7671")
        boss.check("input[value=valid]")
        boss.fill("textarea[name=note]", "救急車を手配しました")
        boss.click("#resolve-form button[type=submit]")
        boss.wait_for_url(f"**/dashboard/alerts/{item['id']}?done=1")
        wait_for(lambda: sato.get_attribute("#emergency-state", "data-state") == "resolved",
                 "the resolution on the phone")  # fmt: skip
        assert sato.evaluate("document.body.dataset.emergencyWindow") == "closed"
        assert sato.errors == [] and boss.errors == []
    finally:
        sato.context.browser.close()
        boss.context.browser.close()
    assert audit(org) == [
        ("sato", "alert.raise"),
        ("boss", "alert.acknowledge"),
        ("boss", "alert.resolve"),
    ]
