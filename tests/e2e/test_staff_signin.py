"""Staff sign in without tokens, in Debian's Chromium with a phone-sized screen: the QR code link
(/signin#code=…) lands in the phone app, the staff member taps a channel (display names) and is
heard by a colleague; sign-out ends the call; wrong codes, an empty channel list and a channel
taken away get clear messages; a short session warns and then ends the call on the sign-in
screen. Everything runs inside a private network namespace (tests/e2e/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import make_code, org_server, password
from tests.audio import write_bursts
from tests.e2e.conftest import device_link
from tests.e2e.test_web_client import hears, state, talking, wait_for
from tests.servers import ServerProcess
from voice_server.bench.browser import launch_chromium

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
FREQ = 523.0
SHOTS = os.environ.get("VOICE_E2E_SCREENSHOTS")  # a folder: save what the phone showed


def shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def phone(pw: Any, audio: Path | None, locale: str = "ja-JP") -> Any:
    browser = launch_chromium(pw, audio_file=audio)
    context = browser.new_context(
        locale=locale, viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    return page


def visible(page: Any, selector: str) -> bool:
    return bool(page.evaluate(f"!document.querySelector('{selector}').hidden"))


@pytest.fixture(scope="module")
def org(namespace: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with org_server(tmp_path_factory.mktemp("staff-e2e")) as srv:
        yield srv


def test_a_staff_member_signs_in_by_qr_code_taps_a_channel_talks_and_signs_out(
    pw: Any, org: ServerProcess, tmp_path: Path
) -> None:
    tone = write_bursts(tmp_path / "sato.wav", FREQ, on_seconds=1.5, off_seconds=0.8)
    listener_url = device_link(org, org.token("kato", "ops"))  # pasted tokens keep working
    listener = phone(pw, None, locale="en-US")
    staff = phone(pw, tone)
    try:
        listener.goto(listener_url)
        wait_for(lambda: state(listener) == ("joined", "connected"), "the listener joined", 30)

        staff.goto(f"{org.url}/signin#code={make_code(org, 'sato')}")
        staff.wait_for_selector("#channels:not([hidden])", timeout=20000)
        assert "code=" not in staff.url and staff.url.rstrip("/").endswith(str(org.port))
        assert staff.text_content("#greeting") == "Sato さんとしてサインイン中"
        titles = staff.eval_on_selector_all(".channel-title", "els => els.map(e => e.textContent)")
        assert titles == ["運用"]
        assert not visible(staff, "#no-channels")
        shot(staff, "staff-1-channels")

        staff.click("button.channel[data-channel='ops']")
        wait_for(lambda: state(staff) == ("joined", "connected"), "sato in the call", 30)
        assert staff.text_content("#channel-name") == "運用"
        assert not visible(staff, "#switch-box") and not visible(staff, "#token-renewal")
        wait_for(lambda: talking(listener, "sato") == "true", "the listener seeing sato talk", 30)
        wait_for(lambda: hears(listener, FREQ), "the listener hearing sato's tone", 30)
        assert staff.evaluate("localStorage.getItem('voice.token')") is None  # never stored
        shot(staff, "staff-2-call")

        staff.click("#call details.settings summary")
        staff.click("#signout-call")
        staff.wait_for_selector("#signin:not([hidden])", timeout=10000)
        assert staff.text_content("#signin-notice") == "サインアウトしました。"
        wait_for(lambda: talking(listener, "sato") is None, "sato gone from the list", 30)
        session = staff.evaluate("fetch('/api/v1/auth/session').then(r => r.json())")
        assert session["authenticated"] is False
        shot(staff, "staff-3-signed-out")
        assert not staff.errors and not listener.errors, (staff.errors, listener.errors)
    finally:
        staff.context.browser.close()
        listener.context.browser.close()


def test_a_wrong_code_no_channel_and_a_channel_taken_away_get_clear_messages(
    pw: Any, org: ServerProcess
) -> None:
    page = phone(pw, None)
    try:
        page.goto(f"{org.url}/signin#code=WRONG234")
        error = page.locator("#signin-error")
        error.wait_for(state="visible", timeout=20000)
        assert "コードが正しくないか" in (error.text_content() or "")
        shot(page, "bad-1-wrong-code")

        # typed: the code a supervisor read out, then the channel is taken away before the tap
        page.fill("#code", make_code(org, "ito"))
        page.click("#code-signin")
        page.wait_for_selector("#channels:not([hidden])", timeout=20000)
        org.cli("channels", "unassign", "ops", "--member", "ito")
        page.click("button.channel[data-channel='ops']")
        page.locator("#no-channels").wait_for(state="visible", timeout=20000)
        assert (
            page.text_content("#channels-error") == "このチャンネルのメンバーではなくなりました。"
        )
        assert page.eval_on_selector_all(".channel", "els => els.length") == 0
        assert "参加できるチャンネルがまだありません" in (page.text_content("#no-channels") or "")
        shot(page, "bad-2-no-channel")
        assert not page.errors, page.errors
    finally:
        org.cli("channels", "assign", "ops", "--member", "ito")
        page.context.browser.close()


def test_a_disabled_account_is_refused_and_its_call_ends(pw: Any, org: ServerProcess) -> None:
    page = phone(pw, None, locale="en-US")
    try:
        page.goto(f"{org.url}/")
        page.wait_for_selector("#signin:not([hidden])", timeout=20000)
        page.fill("#name", "mori")
        page.fill("#password", password("mori"))
        page.click("#password-signin")
        page.click("button.channel[data-channel='hq']", timeout=20000)
        wait_for(lambda: state(page)[0] == "joined", "mori in hq", 30)
        org.cli("users", "disable", "mori")
        error = page.locator("#signin-error")
        error.wait_for(state="visible", timeout=20000)
        assert error.text_content() == "This account is disabled. Contact your administrator."
        page.fill("#name", "mori")
        page.fill("#password", password("mori"))
        page.click("#password-signin")
        wait_for(
            lambda: page.text_content("#signin-error") == "The name or password is wrong.",
            "the disabled account refused",
            30,
        )
        assert not page.errors, page.errors
    finally:
        org.cli("users", "enable", "mori")
        page.context.browser.close()


def test_a_short_session_warns_then_ends_the_call_on_the_sign_in_screen(
    pw: Any, namespace: None, tmp_path: Path
) -> None:
    env = {"VOICE_SESSION_TTL_SECONDS": "60", "VOICE_SESSION_WARNING_SECONDS": "20"}
    with org_server(tmp_path / "short", env) as short:
        page = phone(pw, None, locale="en-US")
        try:
            page.goto(f"{short.url}/signin#code={make_code(short, 'sato')}")
            page.click("button.channel[data-channel='ops']", timeout=20000)
            wait_for(lambda: state(page)[0] == "joined", "sato in ops", 30)
            warning = page.locator("#session-warning")
            warning.wait_for(state="visible", timeout=60000)
            assert state(page)[0] == "joined"  # warned while the call goes on
            assert "Your sign-in ends at" in (warning.text_content() or "")
            shot(page, "expiry-1-warning")
            page.wait_for_selector("#signin:not([hidden])", timeout=60000)
            assert page.text_content("#signin-error") == (
                "Your sign-in has expired. Sign in again to talk."
            )
            assert state(page)[0] != "joined" and not visible(page, "#session-warning")
            shot(page, "expiry-2-ended")
            assert not page.errors, page.errors
        finally:
            page.context.browser.close()
