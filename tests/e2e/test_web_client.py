"""The phone web client in real browsers (Debian's Chromium, Playwright), talking through a real
server to each other and to a `voice-client`, all inside a private network namespace."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import goertzel_power, loud_part, read_mono, write_bursts, write_tone
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.servers import ServerProcess, running_server
from tests.voiceclients import start_client

pytestmark = pytest.mark.e2e

FREQ_A, FREQ_B, FREQ_D = 440.0, 880.0, 660.0


def heard(page: Any) -> list[float | None]:
    result: list[float | None] = page.evaluate(
        "['1','2','3'].map(m => window.voiceDiag.dominantHz(m))"
    )
    return result


def hears(page: Any, freq: float) -> bool:
    return any(f is not None and abs(f - freq) < 20 for f in heard(page))


def talking(page: Any, sub: str) -> str | None:
    value: str | None = page.evaluate(
        f"(document.querySelector('#people li[data-sub=\"{sub}\"]') || {{}}).dataset?.talking"
    )
    return value


def state(page: Any) -> tuple[str, str]:
    pair = page.evaluate("[document.body.dataset.state, document.body.dataset.media]")
    return (str(pair[0]), str(pair[1]))


def connected(page: Any) -> bool:
    return state(page) == ("joined", "connected")


@pytest.fixture(scope="module")
def pages(
    pw: Any, e2e_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("tones")
    # A talks in short bursts (the hands-free gate must open and close); B talks nearly all the
    # time, with short pauses like speech (a tone that never stops is steady noise to the gate)
    a_file = write_bursts(tmp / "a.wav", FREQ_A, on_seconds=1.2, off_seconds=1.6)
    b_file = write_bursts(tmp / "b.wav", FREQ_B, on_seconds=2.0, off_seconds=0.3)
    srv = e2e_server
    a = open_page(pw, device_link(srv, srv.token("alice", "ops", "hq")), audio=a_file)
    b = open_page(pw, device_link(srv, srv.token("bob", "ops", "hq")), audio=b_file)
    wait_for(lambda: connected(a) and connected(b), "both pages joined with media")
    yield {"a": a, "b": b}
    for page in (a, b):
        assert not page.errors, page.errors
        page.context.browser.close()


def test_each_browser_hears_the_other_and_a_headset_client_records_a(
    pages: dict[str, Any], e2e_server: ServerProcess, tmp_path: Path
) -> None:
    a, b = pages["a"], pages["b"]
    client = start_client(e2e_server, tmp_path, "carol", duration=9)
    wait_for(lambda: hears(b, FREQ_A), "B hearing A's 440 Hz")
    wait_for(lambda: hears(a, FREQ_B), "A hearing B's 880 Hz")

    def flowing() -> dict[str, Any] | None:
        stats: dict[str, Any] = b.evaluate("window.voiceDiag.stats()")
        inbound = stats["inbound"].values()
        ok = any(s["packetsReceived"] > 25 and s["totalAudioEnergy"] > 0 for s in inbound)
        return stats if ok and stats["outbound"]["packetsSent"] > 25 else None

    stats = wait_for(flowing, "B's stats showing audio received and sent")
    # Chromium has RTCRtpReceiver.jitterBufferTarget: every talk slot asks for a low buffer
    assert stats["requestedJitterMs"] and all(ms == 0 for ms in stats["requestedJitterMs"]), stats
    wait_for(lambda: talking(b, "alice") == "true", "B showing alice talking")
    wait_for(lambda: talking(a, "bob") == "true", "A showing bob talking")
    assert client.wait() == 0, client.stderr
    samples, rate = read_mono(client.record)  # type: ignore[arg-type]
    part = loud_part(samples, rate)
    assert part, "the headset client recorded nothing"
    control = goertzel_power(part, rate, 550.0)
    assert goertzel_power(part, rate, FREQ_A) > 20 * control
    assert goertzel_power(part, rate, FREQ_B) > 20 * control
    # A's bursts were separate talk bursts: the gate sent silence between them
    alice = [e for e in client.of("talk_started") if e["speaker"]["sub"] == "alice"]
    stops = [e for e in client.of("talk_stopped") if e["speaker"]["sub"] == "alice"]
    assert len(alice) >= 2 and stops, client.events
    assert a.evaluate("window.voiceDiag.txOnsets.length") >= 2


def test_push_to_talk_sends_only_while_the_space_bar_is_held(
    pages: dict[str, Any], pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    b = pages["b"]
    tone = write_tone(tmp_path / "d.wav", FREQ_D, 2.0)
    d = open_page(
        pw, device_link(e2e_server, e2e_server.token("dave", "ops"), mode="ptt"), audio=tone
    )
    try:
        wait_for(lambda: connected(d), "D joined")
        wait_for(lambda: talking(b, "dave") == "false", "B listing dave")
        time.sleep(1.5)
        assert talking(b, "dave") == "false"  # a continuous tone, but nothing is sent
        d.keyboard.down("Space")
        wait_for(lambda: talking(b, "dave") == "true", "dave talking while space is held")
        wait_for(lambda: hears(b, FREQ_D), "B hearing dave's 660 Hz")
        d.keyboard.up("Space")
        wait_for(lambda: talking(b, "dave") == "false", "dave stopped after release", 5)
        assert d.evaluate("document.getElementById('ptt').hidden") is False
        assert not d.errors, d.errors
    finally:
        d.context.browser.close()


def test_switching_channel_needs_no_reload(pages: dict[str, Any]) -> None:
    a, b = pages["a"], pages["b"]
    b.evaluate("window.__sameDocument = 42")
    b.fill("#switch-channel", "hq")
    b.click("#switch")
    wait_for(lambda: b.text_content("#channel-name") == "hq", "B in hq")
    wait_for(lambda: talking(a, "bob") is None, "bob gone from A's list")
    wait_for(lambda: connected(b), "B's media in hq")
    b.fill("#switch-channel", "ops")
    b.click("#switch")
    wait_for(lambda: b.text_content("#channel-name") == "ops", "B back in ops")
    wait_for(lambda: talking(a, "bob") is not None, "bob back in A's list")
    wait_for(lambda: connected(b), "B's media in ops again")
    wait_for(lambda: hears(a, FREQ_B), "A hearing B again")
    assert b.evaluate("window.__sameDocument") == 42


def diag_events(page: Any, since: int = 0) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = page.evaluate("window.voiceDiag.events")
    return events[since:]


@pytest.mark.parametrize("how", ["restart", "freeze"])
def test_pages_rejoin_by_themselves_after_a_server_restart(
    how: str, pages: dict[str, Any], e2e_server: ServerProcess
) -> None:
    """restart: the server stops (its sockets close) and starts again. freeze: it is stopped
    with SIGSTOP, its sockets open and silent (a hung process, a pulled cable): pinging every
    2 s, each page calls the socket dead 5 s after the server's last message, and once the
    server runs again (SIGCONT) rejoins and resumes its session."""
    a, b = pages["a"], pages["b"]
    since = {}
    for page in (a, b):
        page.evaluate("window.__sameDocument = 7")
        since[page] = len(diag_events(page))
    proc = e2e_server.proc
    assert proc is not None
    if how == "restart":
        e2e_server.stop()
    else:
        proc.send_signal(signal.SIGSTOP)
    frozen_ms = time.time() * 1000
    try:
        wait_for(lambda: state(a)[0] == state(b)[0] == "reconnecting", "both lost")
    finally:
        if how == "freeze":
            proc.send_signal(signal.SIGCONT)
    assert a.text_content("#status") == "Connection lost. Reconnecting…"
    for page in (a, b):
        lost = next(e for e in diag_events(page, since[page]) if e["kind"] == "lost")
        assert lost["why"] == ("closed" if how == "restart" else "quiet"), lost
        if how == "freeze":  # 5 s after the last message by the rule; slack for a busy machine
            print(f"frozen server noticed after {lost['wall'] - frozen_ms:.0f} ms")
            assert lost["wall"] - frozen_ms < 10_000
    if how == "restart":
        e2e_server.start()
    ready = time.monotonic()  # the server answers /readyz again (freeze: it runs again)
    # retries back off to at most 2 s (connection.js), so a page is back soon after the server;
    # the deadline is generous for a busy machine, and the time is a figure, not an assertion
    wait_for(lambda: connected(a) and connected(b), "both rejoined with media", 60)
    print(f"both rejoined with media {time.monotonic() - ready:.1f} s after the server was back")
    wait_for(lambda: hears(b, FREQ_A), "B hearing A after the restart")
    wait_for(lambda: hears(a, FREQ_B), "A hearing B after the restart")
    for page in (a, b):
        assert page.evaluate("window.__sameDocument") == 7  # no reload
        events = diag_events(page, since[page])
        kinds = [e["kind"] for e in events]
        assert "lost" in kinds and "reconnected" in kinds
        back = next(e for e in events if e["kind"] == "reconnected")
        assert back["resumed"] is (how == "freeze")  # a restarted server knows no session


def test_an_expiring_pasted_token_is_warned_about_and_renewed_by_pasting(
    pw: Any, namespace: None, tmp_path: Path
) -> None:
    """On a server of its own with the default warning (5 min before): a token that expires in
    4 min is warned about as soon as it joins, and stays valid however slow a busy machine is to
    show the page (on the shared server's 10 s warning, a 20 s token once expired first)."""
    tone = write_tone(tmp_path / "f.wav", 550.0, 1.0)
    (tmp_path / "srv").mkdir()
    with running_server(tmp_path / "srv") as srv:
        renew_an_expiring_pasted_token(pw, srv, tone)


def renew_an_expiring_pasted_token(pw: Any, e2e_server: ServerProcess, tone: Path) -> None:
    short = e2e_server.token("fay", "ops", ttl="240")
    page = open_page(pw, device_link(e2e_server, short), audio=tone)
    try:
        warning = page.locator("#warning")
        warning.wait_for(state="visible", timeout=15000)
        assert "expires at" in (warning.text_content() or "")
        page.fill("#new-token", e2e_server.token("fay", "ops"))
        page.click("#renew")
        wait_for(lambda: warning.text_content() == "Sign-in renewed.", "the refresh confirmed")
        assert state(page)[0] == "joined"
    finally:
        page.context.browser.close()


def test_tap_to_start_is_shown_while_the_browser_holds_audio_back(
    pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    tone = write_tone(tmp_path / "e.wav", 550.0, 1.0)
    url = device_link(e2e_server, e2e_server.token("erin", "ops"))
    page = open_page(pw, url, audio=tone, autoplay=False)
    try:
        tap = page.locator("#tap")
        tap.wait_for(state="visible", timeout=15000)
        assert "Tap to start audio" in (tap.text_content() or "")
        assert "token=" not in page.url  # the device link was removed from the address bar
        wait_for(lambda: state(page)[0] == "joined", "joined while audio waits for the tap")
        tap.click()
        tap.wait_for(state="hidden", timeout=5000)
        assert page.evaluate("window.voiceDiag.engine.ctx.state") == "running"
        assert not page.errors, page.errors
    finally:
        page.context.browser.close()


HEARTBEAT_JS = """async ([heardAt, first]) => {
    const { heartbeat, PING_MS, QUIET_MS } = await import('/js/connection.js');
    const out = [];
    let now = first, lastHeard = 0, lastPing = 0, asked = null;
    while (now < 120000) {
      for (const t of heardAt) if (t <= now && t > lastHeard) { lastHeard = t; asked = null; }
      const beat = heartbeat(now, lastHeard, lastPing, asked);
      if (beat.dead) { out.push([now, "dead"]); break; }
      if (beat.ping) { out.push([now, "ping"]); lastPing = now; if (asked === null) asked = now; }
      const next = heardAt.find((t) => t > now);
      now = Math.min(now + beat.wait, next === undefined ? Infinity : next);
    }
    return { out, figures: [PING_MS, QUIET_MS] };
}"""


def python_heartbeat(heard_at: list[int], first: int) -> list[list[Any]]:
    """What voice_client.liveness does on the same clock (ms), woken as the runner wakes it."""
    from voice_client.liveness import Liveness

    live = Liveness.opened(0.0)
    out: list[list[Any]] = []
    now = first / 1000
    while now < 120.0:
        for t in heard_at:
            if live.last_heard < t / 1000 <= now:
                live.heard(t / 1000)
                live.handled(t / 1000)
        beat = live.beat(now, joined=True)
        if beat.dead:
            out.append([round(now * 1000), "dead"])
            break
        if beat.ping:
            out.append([round(now * 1000), "ping"])
        now = min([beat.wake_at, *(t / 1000 for t in heard_at if t / 1000 > now)])
    return out


@pytest.mark.parametrize(
    ("heard_at", "first", "expected"),
    [
        # messages from the server, then silence: a ping every 2 s, dead 5 s after the last one
        ([300, 1_000, 1_500, 6_400, 8_000], 0,
         [[t, "ping"] for t in range(2_000, 13_000, 2_000)] + [[13_000, "dead"]]),
        # the watch first looks a minute late (a hidden tab's timer, a phone waking up): it has
        # asked nothing, so it pings first; dead when that ping has had no answer for 3 s
        ([100], 60_000, [[60_000, "ping"], [62_000, "ping"], [63_000, "dead"]]),
        ([100, 60_050], 60_000,
         [[60_000, "ping"], [62_000, "ping"], [64_000, "ping"], [65_050, "dead"]]),
    ],
)  # fmt: skip
def test_the_heartbeat_follows_the_same_rule_as_the_headset_client(
    pages: dict[str, Any], heard_at: list[int], first: int, expected: list[list[Any]]
) -> None:
    """connection.js's heartbeat() and voice_client.liveness on the same made-up clock."""
    js = pages["a"].evaluate(HEARTBEAT_JS, [heard_at, first])
    assert js["figures"] == [2000, 5000]
    assert js["out"] == expected
    assert python_heartbeat(heard_at, first) == expected


def test_the_browser_gate_follows_the_same_rule_as_the_headset_client(
    pages: dict[str, Any],
) -> None:
    from voice_client.vad import VadGate, VadRules

    levels = (
        [-100.0] * 5 + [-20.0] * 12 + [-100.0] * 3 + [-30.0] * 2 + [-100.0] * 70
        + [-20.0] + [-100.0] * 5 + [-40.0] * 400
    )  # fmt: skip
    browser_states = pages["a"].evaluate(
        """async (levels) => {
            const { VadGate } = await import('/js/vad.js');
            const gate = new VadGate();
            return levels.map((db) => { gate.feed(db); return gate.open; });
        }""",
        levels,
    )
    gate = VadGate(VadRules())
    python_states = []
    for db in levels:
        gate.feed(db)
        python_states.append(gate.open)
    assert browser_states == python_states
    assert True in python_states and False in python_states[5:]


def test_a_migrate_is_followed_only_within_the_pages_own_origin(pages: dict[str, Any]) -> None:
    """allowedNode(): a drained node's `migrate` url is used only on the page's own origin (all
    nodes behind one proxy; the CSP allows no other), else the same address is used again."""
    page = pages["a"]
    got = page.evaluate(
        """async () => {
            const { allowedNode } = await import('/js/connection.js');
            const here = window.location.origin;
            return [
                allowedNode(here + "/"),
                allowedNode("http://10.9.9.9:8000"),
                allowedNode(null),
                allowedNode("not a url at all::"),
                allowedNode(here + "/node2/"),
            ];
        }"""
    )
    origin = page.evaluate("window.location.host")
    ws = f"ws://{origin}/ws"
    assert got[0] == ws
    assert got[1] is None and got[2] is None
    assert got[3] in (None, ws)  # a relative oddity resolves on this origin at worst
    assert got[4] == ws  # the path of a proxy route is not followed: /ws of the origin
