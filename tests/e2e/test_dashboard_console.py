"""The dispatcher console in Debian's Chromium (Playwright, private network namespace, the page's
real CSP, the transcriber the server supervises): a supervisor signs in, opens /dashboard/console
monitoring three channels on one peer connection, hears a different tone from each (per-track
analysers), sets volume and mute per channel, sees a channel's last committed line, and holding
the space bar (or pressing a headset's media button) talks into the selected channel only (real
`voice-client` peers in each channel record what they hear)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import BY, build_org, password
from tests.audio import goertzel_power, read_mono, write_tone
from tests.e2e.conftest import wait_for
from tests.servers import ServerProcess, running_server
from tests.speech import SENTENCES, speech_wav
from tests.voiceclients import ClientRun, start_client
from voice_server.accounts.bundle import Accounts
from voice_server.accounts.users import Assignment
from voice_server.bench.browser import launch_chromium
from voice_server.store.database import Database

pytestmark = pytest.mark.e2e

TONES = {"ops": 440.0, "hq": 660.0, "yard": 880.0}
TALKERS = {"ops": "sato", "hq": "mori", "yard": "yuki"}
CONSOLE_TONE = 1200.0
HANDLERS = """(() => {
  window.mediaHandlers = {};
  if (!("mediaSession" in navigator)) return;
  const set = navigator.mediaSession.setActionHandler.bind(navigator.mediaSession);
  navigator.mediaSession.setActionHandler = (action, handler) => {
    window.mediaHandlers[action] = handler;
    set(action, handler);
  };
})();"""


@pytest.fixture(scope="module")
def server(namespace: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("console-e2e")
    build_org(data)
    svc = Accounts.open(Database(data / "voice.db")).service
    svc.add_channel(BY, "yard", display_name="資材置場")
    svc.add_user(BY, "yuki", "staff", display_name="Yuki", password=password("yuki"))
    svc.assign(BY, "yard", "yuki", Assignment.MEMBER)
    for channel in ("hq", "yard"):
        svc.assign(BY, channel, "boss", Assignment.SUPERVISOR)
    # channels and accounts made above; the transcriber as `make run` starts it
    with running_server(data, channels=(), extra_args=["--transcriber"]) as srv:
        yield srv


def near(page: Any, mid: str, freq: float) -> bool:
    hz = page.evaluate(f"window.consoleDiag.dominantHz('{mid}')")
    return hz is not None and abs(hz - freq) < 20


def mids_of(page: Any, channel: str) -> list[str]:
    slots: dict[str, Any] = page.evaluate("window.consoleDiag.slotsMap")
    return sorted((m for m, e in slots.items() if e["channel"] == channel), key=int)


SENT = """async () => {
  let n = 0;
  (await window.consoleDiag.call.pc.getStats()).forEach((r) => {
    if (r.type === "outbound-rtp") n = r.packetsSent;
  });
  return n;
}"""


def sent(page: Any) -> int:
    return int(page.evaluate(SENT))


def boss_talks(c: ClientRun) -> list[dict[str, Any]]:
    return [e for e in c.seen("talk_started") if e["speaker"]["sub"] == "boss"]


def inbound(page: Any, mid: str) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate("window.consoleDiag.call.stats()")
    return dict(stats["inbound"].get(mid) or {})


def window_from(page: Any, mid: str, start: dict[str, Any]) -> dict[str, Any]:
    """The slot's stats once ~3 s more of its audio (150 packets) has arrived."""
    got: dict[str, Any] = wait_for(
        lambda: (
            (now := inbound(page, mid))["packetsReceived"] - start["packetsReceived"] > 150 and now
        ),
        "150 more packets",
    )
    return got


def monitored(page: Any) -> list[str] | None:
    events = [e for e in page.evaluate("window.consoleDiag.events") if e["kind"] == "monitored"]
    return sorted(events[-1]["channels"]) if events else None


def ptt(page: Any) -> list[bool]:
    return [e["pressed"] for e in page.evaluate("window.consoleDiag.events") if e["kind"] == "ptt"]


def kinds(page: Any) -> list[str]:
    return [e["kind"] for e in page.evaluate("window.consoleDiag.events")]


def frozen_server_is_noticed_and_the_console_comes_back(page: Any, server: ServerProcess) -> None:
    """The server freezes (SIGSTOP: its sockets stay open, nothing answers): the console's
    signaling, each channel's live view and the alert banner's event stream notice it within 5 s
    of the server's last message (each pings every 2 s); once the server runs again (SIGCONT)
    the session is resumed, the views and the stream reopen, and every channel is heard again."""
    proc = server.proc
    assert proc is not None
    since = len(page.evaluate("window.consoleDiag.events"))

    def events(kind: str) -> list[dict[str, Any]]:
        return [e for e in page.evaluate("window.consoleDiag.events")[since:] if e["kind"] == kind]

    def stream() -> str | None:
        value: str | None = page.evaluate("document.getElementById('alert-banner').dataset.stream")
        return value

    wait_for(lambda: stream() == "live", "the alert stream")
    proc.send_signal(signal.SIGSTOP)
    frozen_ms = time.time() * 1000
    try:
        wait_for(
            lambda: events("lost") and len(events("live_lost")) == len(TONES)
            and stream() == "lost",
            "the console, its live views and the alert stream noticing the frozen server",
        )  # fmt: skip
    finally:
        proc.send_signal(signal.SIGCONT)
    assert [e["why"] for e in events("lost")] == ["quiet"]
    assert {e["channel"] for e in events("live_lost")} == set(TONES)
    noticed = [e["wall"] - frozen_ms for e in events("lost") + events("live_lost")]
    print(f"console: frozen server noticed after {max(noticed):.0f} ms at the latest")
    assert max(noticed) < 10_000  # 5 s after the last message by the rule; a busy machine's slack
    wait_for(lambda: [e["resumed"] for e in events("joined")] == [True], "the console rejoined")
    wait_for(lambda: {e["channel"] for e in events("live")} == set(TONES), "the live views again")
    wait_for(lambda: stream() == "live", "the alert stream again")
    for ch, freq in TONES.items():
        wait_for(lambda ch=ch, freq=freq: any(near(page, m, freq) for m in mids_of(page, ch)),
                 f"{ch}'s tone after the freeze", timeout=60)  # fmt: skip


def test_the_console_hears_three_channels_and_talks_only_into_the_selected_one(
    pw: Any, server: ServerProcess, tmp_path: Path
) -> None:
    talkers: dict[str, ClientRun] = {
        ch: start_client(server, tmp_path, name, channel=ch, loop=True, duration=300,
                         play=write_tone(tmp_path / f"{ch}.wav", TONES[ch], 2.0),
                         extra_args=["--mode", "open"])  # a steady tone: no gate to close
        for ch, name in TALKERS.items()
    }  # fmt: skip
    browser = launch_chromium(pw, audio_file=write_tone(tmp_path / "mic.wav", CONSOLE_TONE, 4.0))
    try:
        for c in talkers.values():
            c.wait_event("media", state="connected", timeout=60)
        page = browser.new_page(locale="ja-JP")
        # a headset's media button: the browser calls the page's Media Session handlers; the
        # test keeps them to call them as the browser would
        page.add_init_script(HANDLERS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/signin?next=/dashboard/console")
        page.fill("input[name=name]", "boss")
        page.fill("input[name=password]", password("boss"))
        page.click("#password-form button[type=submit]")
        page.wait_for_url("**/dashboard/console")
        names = page.eval_on_selector_all(
            ".console-channel .display-name", "e => e.map(x => x.textContent)"
        )
        assert names == ["本部", "運用", "資材置場"]  # fmt: skip
        page.check(".console-channel[data-channel=hq] input[name=target]")
        page.uncheck("#ns")  # a steady test tone is what noise suppression removes
        page.click("#console-start")
        wait_for(lambda: len(page.evaluate("window.consoleDiag.slotsMap")) == 9, "9 slot m-lines")
        # one peer connection hears each channel on its own m-lines: a tone per channel
        for ch, freq in TONES.items():
            wait_for(lambda ch=ch, freq=freq: any(near(page, m, freq) for m in mids_of(page, ch)),
                     f"{ch}'s tone on its slots", timeout=60)  # fmt: skip
        media = [e for e in page.evaluate("window.consoleDiag.events") if e["kind"] == "media"]
        assert [e["state"] for e in media].count("connected") == 1
        # unmonitor and monitor yard again mid-call: its m-lines are reused (no new offer) and
        # ops plays on, on its own m-lines, without a gap (concealment compared with a control
        # window of the same call: a busy machine starves the browser's audio now and then)
        ops_mid = next(m for m in mids_of(page, "ops") if near(page, m, TONES["ops"]))
        control_start = inbound(page, ops_mid)
        before = window_from(page, ops_mid, control_start)
        offers = kinds(page).count("renegotiate")
        page.uncheck(".console-channel[data-channel=yard] .monitor")
        wait_for(lambda: monitored(page) == ["hq", "ops"], "yard unmonitored")
        page.check(".console-channel[data-channel=yard] .monitor")
        wait_for(lambda: monitored(page) == ["hq", "ops", "yard"], "yard monitored again")
        after = window_from(page, ops_mid, before)
        wait_for(lambda: any(near(page, m, TONES["yard"]) for m in mids_of(page, "yard")),
                 "yard's tone again")  # fmt: skip
        assert kinds(page).count("renegotiate") == offers

        def played(a: dict[str, Any], b: dict[str, Any]) -> float:
            return max(1.0, (b["totalSamplesDuration"] - a["totalSamplesDuration"]) * 48_000)

        # on the wire, ops went on: no packet of its stream missing through the two changes
        assert after["packetsLost"] == before["packetsLost"], (before, after)
        # as played: Chromium conceals now and then when another stream resumes (~0.29 s seen in
        # some runs, unexplained); bounded here, the control window says what is usual
        control = before["concealedSamples"] - control_start["concealedSamples"]
        rate = control / played(control_start, before)
        concealed = after["concealedSamples"] - before["concealedSamples"]
        assert concealed < 48_000 * 0.5 + 2 * rate * played(before, after), (control, after)
        # volume and mute per channel
        page.fill(".console-channel[data-channel=hq] .volume", "30")
        page.check(".console-channel[data-channel=yard] .mute")
        volumes: dict[str, float] = page.evaluate("window.consoleDiag.volumes()")
        assert {volumes[m] for m in mids_of(page, "hq")} == {0.3}
        assert {volumes[m] for m in mids_of(page, "yard")} == {0.0}
        assert {volumes[m] for m in mids_of(page, "ops")} == {1.0}
        # the members and the talker of each channel are shown
        wait_for(lambda: "Mori" in page.inner_text(".console-channel[data-channel=hq] .members"),
                 "hq's members")  # fmt: skip
        # hold the space bar: the talk reaches hq only
        wait_for(
            lambda: "talk_target_set" in kinds(page),
            f"the talk target {page.evaluate('window.consoleDiag.events')}",
        )
        wait_for(lambda: not page.is_disabled("#talk"), "the talk button")
        assert not boss_talks(talkers["hq"])  # push-to-talk: nothing before the space bar
        page.keyboard.down("Space")
        wait_for(lambda: boss_talks(talkers["hq"]), "hq hearing the console", timeout=60)
        first = sent(page)
        wait_for(lambda: sent(page) - first > 150, "3 s more of the console's voice sent")
        page.keyboard.up("Space")
        # the headset button: one press talks, the next stops (Media Session actions)
        assert page.evaluate("Object.keys(window.mediaHandlers)")
        presses = len(ptt(page))
        page.evaluate("(window.mediaHandlers.togglemicrophone || window.mediaHandlers.play)()")
        assert ptt(page)[presses:] == [True]
        first = sent(page)
        wait_for(lambda: sent(page) - first > 50, "the console sending on the headset button")
        page.evaluate("(window.mediaHandlers.togglemicrophone || window.mediaHandlers.play)()")
        assert ptt(page)[presses:] == [True, False]
        # a line spoken in hq, transcribed, is hq's last line on the console
        speaker = start_client(server, tmp_path, "mori", channel="hq", device_id="mori-2",
                               play=speech_wav(tmp_path / "ko.wav", SENTENCES[:1]), duration=10,
                               record=False)  # fmt: skip
        line = ".console-channel[data-channel=hq] .last-line"
        wait_for(lambda: page.inner_text(f"{line} .text").strip(), "hq's last line", 90)
        assert page.inner_text(f"{line} .speaker-name") == "Mori"
        assert page.inner_text(".console-channel[data-channel=ops] .last-line .text") == ""
        assert speaker.wait(60) == 0, speaker.stderr
        frozen_server_is_noticed_and_the_console_comes_back(page, server)
        assert not errors, errors
    finally:
        browser.close()
        for c in talkers.values():
            c.proc.terminate()
            c.wait(30)
    heard = {}
    for ch, c in talkers.items():
        s, r = read_mono(c.record)  # type: ignore[arg-type]
        heard[ch] = goertzel_power(s, r, CONSOLE_TONE) / max(1, len(s))
        assert bool(boss_talks(c)) == (ch == "hq"), ch
    assert heard["hq"] > 100 * max(heard["ops"], heard["yard"], 1.0), heard
