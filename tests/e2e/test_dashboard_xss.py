"""User text is always text: ≥ 50 XSS payloads as user and channel display names, rendered by the
dashboard in real Chromium (Debian's, driven by Playwright) with the page's CSP bypassed, so what
is tested is the escaping: no script runs and the visible text equals the payload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import BY, password
from tests.servers import ServerProcess, free_port
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.users import Assignment
from voice_server.bench.browser import launch_chromium
from voice_server.store.database import Database

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.sync_api")

PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//x.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=x onerror=\"window.__xss.push('img')\">",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<body onload=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<a href="javascript:alert(1)">click</a>',
    "javascript:alert(1)",
    "<a href=javascript&colon;alert(1)>x</a>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    '" onmouseover="alert(1)',
    "' onfocus='alert(1)' autofocus='",
    "</title><script>alert(1)</script>",
    "</textarea><script>alert(1)</script>",
    "</td></tr></table><script>alert(1)</script>",
    "<details open ontoggle=alert(1)>",
    "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    "<audio src=x onerror=alert(1)>",
    '<object data="javascript:alert(1)">',
    '<embed src="javascript:alert(1)">',
    "<math><mtext><script>alert(1)</script></mtext></math>",
    "<style>*{background:url(javascript:alert(1))}</style>",
    "<link rel=stylesheet href=javascript:alert(1)>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    "<form action=javascript:alert(1)><button>x</button></form>",
    "{{7*7}}",
    "{% raw %}{{ config }}{% endraw %}",
    "${alert(1)}",
    "＜script＞alert(1)＜/script＞",
    "＜img src=x onerror=alert(1)＞",
    "\u202e<script>alert(1)</script>",
    "\u202egnp.exe",
    "abc\u202dxyz\u202c<b>bold</b>",
    "\u200b<script>alert(1)</script>\u200b",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    "%3Cscript%3Ealert(1)%3C/script%3E",
    "<scr<script>ipt>alert(1)</scr</script>ipt>",
    "<img src=`x` onerror=alert(1)>",
    "<img/src=x/onerror=alert(1)>",
    "<svg/onload=alert`1`>",
    "<marquee onstart=alert(1)>",
    '<div style="width:expression(alert(1))">',
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "<!--<script>alert(1)</script>-->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "避難所<script>alert('漏れ')</script>",
    '=HYPERLINK("http://x.example","click")',
    "<template><script>alert(1)</script></template>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
]
INIT = """
window.__xss = [];
for (const name of ["alert", "confirm", "prompt", "print"]) {
  window[name] = (...args) => { window.__xss.push(name + ":" + args.join(",")); };
}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    import socket

    data = tmp_path_factory.mktemp("xss")
    accounts = Accounts.open(Database(data / "voice.db"))
    svc = accounts.service
    svc.add_user(BY, "root", "admin", display_name=PAYLOADS[0], password=password("root"))
    for i, payload in enumerate(PAYLOADS):
        svc.add_channel(BY, f"x{i:03d}", display_name=payload)
        svc.add_user(BY, f"u{i:03d}", "staff", display_name=payload, channels=[f"x{i:03d}"])
    svc.assign(BY, "x000", "root", Assignment.SUPERVISOR)
    srv = ServerProcess(data, free_port(), free_port(socket.SOCK_DGRAM))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_payloads_as_display_names_render_as_text_and_never_run(
    server: ServerProcess, tmp_path: Path
) -> None:
    assert len(PAYLOADS) >= 50
    with playwright_api.sync_playwright() as pw:
        browser = launch_chromium(pw)
        context = browser.new_context(bypass_csp=True, locale="ja-JP")
        context.add_init_script(INIT)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{server.url}/signin")
        page.fill("input[name=name]", "root")
        page.fill("input[name=password]", password("root"))
        page.click("#password-form button[type=submit]")
        page.wait_for_url(f"{server.url}/dashboard")
        assert page.text_content("#me") == PAYLOADS[0]

        def check_page(path: str) -> None:
            page.goto(f"{server.url}{path}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(50)
            assert page.evaluate("window.__xss") == [], path
            bad = page.evaluate(
                "document.querySelectorAll('main script, main img, main iframe, main object,"
                " main embed, main video, main audio, main svg, main marquee, main details,"
                ' a[href^="javascript"], a[href^="data:"]\').length'
            )
            assert bad == 0, path

        check_page("/dashboard/users")
        users = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tr[data-user^=u]')]"
            ".map(r => [r.dataset.user, r.querySelector('td.display-name').textContent]))"
        )
        assert users == {f"u{i:03d}": p for i, p in enumerate(PAYLOADS)}

        check_page("/dashboard/channels")
        channels = page.evaluate(
            "Object.fromEntries([...document.querySelectorAll('tr[data-channel^=x]')]"
            ".map(r => [r.dataset.channel, r.querySelector('td.display-name').textContent]))"
        )
        assert channels == {f"x{i:03d}": p for i, p in enumerate(PAYLOADS)}

        for i in range(0, len(PAYLOADS), 5):
            check_page(f"/dashboard/channels/x{i:03d}")
            assert page.text_content("#channel-title") == PAYLOADS[i]
            assert page.input_value("#display-name-input") == PAYLOADS[i]

        check_page("/dashboard/codes")
        options = page.evaluate(
            "[...document.querySelectorAll('select[name=user] option')].map(o => o.textContent)"
        )
        assert sorted(options) == sorted(f"{p} (u{i:03d})" for i, p in enumerate(PAYLOADS))
        check_page("/dashboard/audit")
        check_page("/dashboard")
        assert dialogs == []
        page.screenshot(path=str(tmp_path / "users.png"))
        browser.close()


def root_page(pw: Any, server: ServerProcess) -> tuple[Any, Any]:
    """Chromium signed in as root on the dashboard (Japanese, the XSS probe installed)."""
    browser = launch_chromium(pw)
    context = browser.new_context(bypass_csp=True, locale="ja-JP")
    context.add_init_script(INIT)
    page = context.new_page()
    page.goto(f"{server.url}/signin")
    page.fill("input[name=name]", "root")
    page.fill("input[name=password]", password("root"))
    page.click("#password-form button[type=submit]")
    page.wait_for_url(f"{server.url}/dashboard")
    return browser, page


def test_payloads_as_announcement_text_render_as_text_and_never_run(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Announcements typed in the dashboard's form and posted to the API, listed as text."""
    import httpx

    pytest.importorskip("pyopenjtalk")
    spoken = [p for p in PAYLOADS if any(c.isalpha() for c in p)][:8]
    token = server.token("root", "x000", role="admin", aud="api")
    for payload in spoken[1:]:
        r = httpx.post(
            f"{server.url}/api/v1/announcements",
            json={"text": payload, "channels": ["x000"], "urgent": True},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text
    with playwright_api.sync_playwright() as pw:
        browser, page = root_page(pw, server)
        page.goto(f"{server.url}/dashboard/announcements")
        page.fill("textarea[name=text]", spoken[0])
        page.click("#announce-form button[type=submit]")
        page.wait_for_selector("#announce-sent", timeout=60_000)
        page.fill("textarea[name=text]", "   ")
        page.evaluate("document.querySelector('textarea[name=text]').removeAttribute('required')")
        page.click("#announce-form button[type=submit]")
        page.wait_for_selector("#announce-error", timeout=60_000)
        page.goto(f"{server.url}/dashboard/announcements")
        texts = page.evaluate(
            "[...document.querySelectorAll('li.announcement .announcement-text')]"
            ".map(p => p.textContent)"
        )
        assert sorted(texts) == sorted(spoken)  # the refused one was not stored
        assert page.evaluate("window.__xss") == []
        assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0
        page.screenshot(path=str(tmp_path / "announcements.png"), full_page=True)
        page.goto(f"{server.url}/dashboard/about")
        assert "CC BY 3.0" in (page.text_content("#credit-mei") or "")
        browser.close()


def test_scheduled_announcements_are_listed_as_text_edited_and_cancelled_in_the_dashboard(
    server: ServerProcess, tmp_path: Path
) -> None:
    payload = next(p for p in PAYLOADS if "<" in p and any(c.isalpha() for c in p))
    with playwright_api.sync_playwright() as pw:
        browser, page = root_page(pw, server)
        page.goto(f"{server.url}/dashboard/announcements")
        # a time in the past is refused with a message, nothing stored
        page.fill("textarea[name=text]", payload)
        page.check("#announce-form input[name=when][value=at]")
        page.fill("#announce-form input[name=at]", "2020-01-01T17:00")
        page.click("#announce-form button[type=submit]")
        page.wait_for_selector("#announce-error")
        assert page.locator("#schedules li").count() == 0
        page.fill("textarea[name=text]", payload)
        page.check("#announce-form input[name=when][value=daily]")
        page.fill("#announce-form input[name=daily_at]", "17:00")
        page.uncheck("#announce-form input[name=days][value=sun]")
        page.click("#announce-form button[type=submit]")
        page.wait_for_selector("#announce-scheduled, #announce-error")
        assert page.locator("#announce-error").count() == 0, page.text_content("#announce-error")
        item = page.locator("#schedules li.schedule").first
        assert item.locator(".announcement-text").text_content() == payload
        assert item.get_attribute("data-status") == "active"
        item.locator("summary").click()
        item.locator("form.schedule-edit textarea").fill("避難所Aは18時に閉鎖します")
        item.locator("form.schedule-edit input[name=daily_at]").fill("18:00")
        item.locator("form.schedule-edit button[type=submit]").click()
        page.wait_for_load_state()
        item = page.locator("#schedules li.schedule").first
        assert item.locator(".announcement-text").text_content() == "避難所Aは18時に閉鎖します"
        assert "18:00" in (item.text_content() or "")
        item.locator("form.schedule-cancel button").click()
        page.wait_for_selector("#schedules li.schedule[data-status=cancelled]")
        assert page.evaluate("window.__xss") == []
        page.screenshot(path=str(tmp_path / "schedules.png"), full_page=True)
        browser.close()


def test_a_recording_uploaded_in_the_dashboard_is_announced_with_its_title_as_text(
    server: ServerProcess, tmp_path: Path
) -> None:
    from tests.audio import write_tone

    payload = next(p for p in PAYLOADS if "<" in p and any(c.isalpha() for c in p))
    wav = write_tone(tmp_path / "memo.wav", 660.0, 1.0)
    junk = tmp_path / "memo.txt"
    junk.write_text("not audio")
    with playwright_api.sync_playwright() as pw:
        browser, page = root_page(pw, server)
        page.goto(f"{server.url}/dashboard/announcements")
        page.set_input_files("#recorded-form input[name=file]", str(junk))
        page.click("#recorded-form button[type=submit]")
        page.wait_for_selector("#announce-error")
        page.set_input_files("#recorded-form input[name=file]", str(wav))
        page.fill("#recorded-form input[name=text]", payload)
        page.click("#recorded-form button[type=submit]")
        page.wait_for_selector("#announce-sent", timeout=60_000)
        texts = page.evaluate(
            "[...document.querySelectorAll('li.announcement .announcement-text')]"
            ".map(p => p.textContent)"
        )
        assert payload in texts
        assert page.evaluate("window.__xss") == []
        browser.close()
