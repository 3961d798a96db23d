"""The supervisor's call log in Debian's Chromium (Playwright): sign in, search Japanese terms of
1, 2 and 3+ characters and get exactly the right hits, play a clip, export CSV, watch the live
view; a staff account and an unassigned supervisor are refused; ≥ 50 XSS payloads as transcript
text render as text (the visible text equals the payload, no script runs) — with the page's CSP
bypassed, so what is tested is the escaping and the highlighting."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import BY, build_org, password
from tests.calllog_seed import seed, utterance
from tests.e2e.test_dashboard_xss import INIT, PAYLOADS
from tests.servers import ServerProcess, free_port
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.users import Assignment
from voice_server.bench.browser import launch_chromium
from voice_server.store.database import Database

pytestmark = pytest.mark.e2e
playwright_api = pytest.importorskip("playwright.sync_api")

# ops: what boss supervises; hq: the same words, which boss must never see
OPS = [
    "東 門 で 水 漏れ が あり ます",
    "ポンプ 室 の 配管 から 漏れ",
    "三 階 で 火事 です",
    "救急 車 を お願い し ます",
    "霧 が 濃い です",
    "了解 です",
]
HQ = ["本部 で 水 漏れ", "本部 火事 訓練", "霧 の 予報"]
# query → the texts expected, newest first (OPS is seeded oldest first)
EXPECTED = {
    "霧": [OPS[4]],
    "漏れ": [OPS[1], OPS[0]],
    "火事": [OPS[2]],
    "救急": [OPS[3]],
    "水漏れ": [OPS[0]],
    "お願いします": [OPS[3]],
    "雪崩": [],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("calllog-e2e")
    build_org(data)
    svc = Accounts.open(Database(data / "voice.db")).service
    svc.add_channel(BY, "xss", display_name="XSS")
    svc.assign(BY, "xss", "boss", Assignment.SUPERVISOR)
    now = int(time.time() * 1000)
    seed(data, [utterance(t, start_ms=now - (100 - i) * 60_000) for i, t in enumerate(OPS)])
    seed(data, [utterance(t, channel="hq", start_ms=now - 50_000) for t in HQ])
    seed(
        data,
        [
            utterance(p, channel="xss", language="", start_ms=now - 200 * 60_000 + i * 1000)
            for i, p in enumerate(PAYLOADS)
        ],
    )
    srv = ServerProcess(data, free_port(), free_port(2), {})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()


def signed_in(browser: Any, server: ServerProcess, name: str) -> Any:
    context = browser.new_context(
        bypass_csp=True, locale="ja-JP", timezone_id="Asia/Tokyo", accept_downloads=True
    )
    context.add_init_script(INIT)
    page = context.new_page()
    page.on("dialog", lambda d: (_ for _ in ()).throw(AssertionError(d.message)))
    page.goto(f"{server.url}/signin?next=/dashboard/search")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password(name))
    page.click("#password-form button[type=submit]")
    page.wait_for_load_state("load")
    return page


def hits(page: Any) -> list[str]:
    return list(page.eval_on_selector_all(".hit .text", "els => els.map(e => e.textContent)"))


def test_a_supervisor_searches_plays_and_exports(browser: Any, server: ServerProcess) -> None:
    page = signed_in(browser, server, "boss")
    for query, expected in EXPECTED.items():
        page.goto(f"{server.url}/dashboard/search")
        page.fill("#q", query)
        page.select_option("#channel", "ops")  # boss also supervises xss (payloads)
        page.click("#search-button")
        page.wait_for_load_state("load")
        assert hits(page) == expected, query
        marks = page.eval_on_selector_all(".hit .text mark", "els => els.map(e => e.textContent)")
        assert all(re.sub(r"\s", "", m) == query for m in marks), (query, marks)
    # the channel filter offers only boss's channels; the time range is in days, Asia/Tokyo
    options = page.eval_on_selector_all("#channel option", "os => os.map(o => o.value)")
    assert options == ["", "ops", "xss"]
    jst = time.time() + 9 * 3600  # Asia/Tokyo has no summer time
    today = time.strftime("%Y-%m-%d", time.gmtime(jst))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(jst - 86400))
    for start, end, expected in (
        (yesterday, today, EXPECTED["漏れ"]),  # all seeded within the last two hours
        ("2020-01-01", "2020-12-31", []),
    ):
        page.goto(f"{server.url}/dashboard/search")
        page.fill("#q", "漏れ")
        page.select_option("#channel", "ops")
        page.fill("#from", start)
        page.fill("#to", end)
        page.click("#search-button")
        page.wait_for_load_state("load")
        assert hits(page) == expected, (start, end)
    page.goto(f"{server.url}/dashboard/search?q=漏れ&channel=ops")
    assert hits(page) == EXPECTED["漏れ"]
    meta = page.eval_on_selector_all(
        ".hit .meta",
        "els => els.map(e => [e.querySelector('.channel-name').textContent,"
        " e.querySelector('.speaker-name').textContent, e.querySelector('time').textContent])",
    )
    assert [m[:2] for m in meta] == [["運用", "Sato"], ["運用", "Sato"]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", m[2]) for m in meta)

    # play the second hit's clip: the signed URL answers 200 audio/ogg and the element loads it
    with page.expect_response(lambda r: "/api/v1/clips/" in r.url) as response:
        page.eval_on_selector_all(
            ".hit audio", "els => { els[1].preload = 'auto'; els[1].load(); }"
        )
    assert response.value.status in (200, 206)
    assert response.value.headers["content-type"] == "audio/ogg"
    page.wait_for_function(
        "document.querySelectorAll('.hit audio')[1].readyState >= 1", timeout=10_000
    )
    duration = page.eval_on_selector_all(".hit audio", "els => els[1].duration")
    assert 0.9 <= duration <= 1.1

    with page.expect_download() as download:
        page.click("#export-csv")
    body = Path(download.value.path()).read_bytes()
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:2] == ["exported_by", "boss"] and "exported_at" in rows[0]
    assert rows[1][:3] == ["id", "start", "end"]
    assert [r[7] for r in rows[2:]] == EXPECTED["漏れ"]

    page.goto(f"{server.url}/dashboard/live/ops")
    page.wait_for_function("document.getElementById('live-status').textContent === '接続しました'")
    assert page.evaluate("window.__xss") == []
    page.context.close()


def test_a_staff_account_and_an_unassigned_supervisor_are_refused(
    browser: Any, server: ServerProcess
) -> None:
    staff = signed_in(browser, server, "sato")
    for path in ("/dashboard/search?q=漏れ", "/dashboard/live/ops"):
        response = staff.goto(f"{server.url}{path}")
        assert response.status == 403, path
        assert hits(staff) == []
    staff.context.close()
    other = signed_in(browser, server, "boss2")  # supervises hq only
    for path in ("/dashboard/search?q=漏れ&channel=ops", "/dashboard/live/ops"):
        assert other.goto(f"{server.url}{path}").status == 403, path
    other.goto(f"{server.url}/dashboard/search?q=漏れ")
    assert hits(other) == [HQ[0]]  # only the channel assigned to them
    other.context.close()


def test_xss_payloads_as_transcript_text_render_as_text(
    browser: Any, server: ServerProcess
) -> None:
    assert len(PAYLOADS) >= 50
    page = signed_in(browser, server, "boss")
    seen: dict[str, str] = {}
    url = f"{server.url}/dashboard/search?q=&channel=xss"
    while url:
        page.goto(url)
        page.wait_for_load_state("load")
        page.wait_for_timeout(50)
        assert page.evaluate("window.__xss") == []
        assert page.evaluate("document.querySelectorAll('.hit .text *').length") == 0
        seen.update(
            page.eval_on_selector_all(
                ".hit",
                "els => Object.fromEntries(els.map(e => [e.dataset.id,"
                " e.querySelector('.text').textContent]))",
            )
        )
        older = page.query_selector("#older")
        url = f"{server.url}{older.get_attribute('href')}" if older else ""
    assert sorted(seen.values()) == sorted(PAYLOADS)
    # highlighted: marks inside escaped text, the visible text still the payload
    page.goto(f"{server.url}/dashboard/search?q=script&channel=xss")
    texts = hits(page)
    assert texts and all(t in PAYLOADS and "script" in t.lower() for t in texts)
    assert page.evaluate(
        "[...document.querySelectorAll('.hit .text *')].every(e => e.tagName === 'MARK')"
    )
    first = page.get_attribute(".hit .detail", "href")
    page.goto(f"{server.url}{first}")
    assert page.text_content("#utterance .text") in PAYLOADS
    assert page.evaluate("window.__xss") == []
    page.context.close()


def test_the_live_view_names_each_participants_node_in_a_cluster(
    browser: Any, server: ServerProcess
) -> None:
    """live.js shows the ``node`` a cluster tags each participant with (README "Live view
    across nodes"; the tagging itself: tests/integration/test_cluster_live.py), and nothing on a
    single node. The page's own WebSocket is answered by a stand-in with such a snapshot."""
    page = signed_in(browser, server, "boss")
    snapshot = {
        "type": "presence",
        "participants": [
            {"sub": "tal", "name": "田村", "online": True, "talking": True, "diag": None,
             "node": "node-a"},
            {"sub": "mi", "name": "美咲", "online": True, "talking": False, "diag": None},
        ],
    }  # fmt: skip
    page.route_web_socket(
        re.compile(r".*/dashboard/live/ops/ws$"), lambda ws: ws.send(json.dumps(snapshot))
    )
    page.goto(f"{server.url}/dashboard/live/ops")
    page.wait_for_selector("#participants li[data-sub=tal]")
    assert page.text_content("#participants li[data-sub=tal] .node") == "ノード node-a"
    assert page.text_content("#participants li[data-sub=mi] .node") == ""
    assert page.get_attribute("#participants li[data-sub=tal]", "class") == "talking"
    page.context.close()
