"""The phone app's boot guard (``clients/web/js/boot.js``) in Debian's Chromium against the real
server: a module of the app that fails to load (what a network change mid-load does to the
requests still waiting: net::ERR_NETWORK_CHANGED) makes the page reload once and the app start;
one that keeps failing gets a clear message instead of a reload loop."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import wait_for
from tests.servers import ServerProcess
from voice_server.bench.browser import launch_chromium

pytestmark = pytest.mark.e2e


def _page(pw: Any, fail: int) -> tuple[Any, Any, dict[str, int]]:
    """A page whose first ``fail`` requests for js/people.js fail as a network change fails
    them (-1: every one)."""
    browser = launch_chromium(pw)
    page = browser.new_page(locale="en-US")
    seen = {"people": 0, "loads": 0}  # loads: requests for the page itself

    def request(r: Any) -> None:
        if r.resource_type == "document":
            seen["loads"] += 1

    page.on("request", request)

    def route(r: Any) -> None:
        seen["people"] += 1
        if fail < 0 or seen["people"] <= fail:
            r.abort("internetdisconnected")
        else:
            r.continue_()

    page.route("**/js/people.js", route)
    return browser, page, seen


def test_a_module_lost_to_a_network_change_reloads_once_and_the_app_starts(
    pw: Any, e2e_server: ServerProcess
) -> None:
    browser, page, seen = _page(pw, fail=1)
    try:
        page.goto(f"{e2e_server.url}/")
        wait_for(
            lambda: page.evaluate("window.voiceAppStarted === true") and seen["loads"] >= 2,
            "the app started after one reload",
            30,
        )
        page.wait_for_selector("#signin:not([hidden])", timeout=10000)
        assert seen["people"] == 2 and seen["loads"] == 2
        assert page.evaluate("document.getElementById('session-warning').hidden")
    finally:
        browser.close()


def test_a_module_that_keeps_failing_says_so_instead_of_reloading_forever(
    pw: Any, e2e_server: ServerProcess
) -> None:
    browser, page, seen = _page(pw, fail=-1)
    try:
        page.goto(f"{e2e_server.url}/")
        wait_for(
            lambda: "could not load" in (page.text_content("#session-warning") or ""),
            "the page says the app could not load",
            30,
        )
        assert seen["loads"] == 2  # one reload, then the message: no loop
        assert not page.evaluate("window.voiceAppStarted === true")
        assert page.text_content("#status") == "Not loaded"
        with page.expect_request(lambda r: r.resource_type == "document"):
            page.click("#session-warning button.boot-reload")  # the page's own reload button
    finally:
        browser.close()
