"""A direct talk from a dispatcher console as the person talked to gets it on the phone app
(Chromium, Japanese locale, private network namespace): the console (`voice-client --console
--talk-to-user`) talks a tone to bea alone; her phone plays the direct-talk cue, shows the
caller's name in Japanese and plays the voice; a member of the same channel hears nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.audio import loud_seconds, read_mono, write_tone
from tests.e2e.conftest import device_link, wait_for
from tests.e2e.test_web_client import connected, hears
from tests.integration.test_console import CONSOLE_TONE, _heard_console
from tests.servers import ServerProcess
from tests.voiceclients import start_client
from voice_server.bench.browser import launch_chromium

pytestmark = pytest.mark.e2e


def diag_events(page: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in page.evaluate("window.voiceDiag.events") if e["kind"] == kind]


def test_a_direct_talk_cues_names_the_caller_and_plays_on_the_persons_phone_only(
    pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    srv = e2e_server
    other = start_client(srv, tmp_path, "cid", duration=90, device_id="cid",
                         extra_args=["--token", srv.token("cid", "ops")])  # fmt: skip
    # bea's microphone is silent (Chromium's default fake microphone beeps)
    browser = launch_chromium(
        pw, audio_file=write_tone(tmp_path / "mic.wav", 440, 2.0, amplitude=0)
    )
    console = None
    try:
        page = browser.new_page(locale="ja-JP")
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(device_link(srv, srv.token("bea", "ops")))
        wait_for(lambda: connected(page), "bea's phone in the call", 90)
        other.wait_event("media", state="connected", timeout=60)
        console = start_client(
            srv, tmp_path, "sup", duration=40, loop=True,
            play=write_tone(tmp_path / "console.wav", CONSOLE_TONE, 2.0),
            extra_args=["--console", "--token", srv.token("sup", "ops", "hq", role="supervisor"),
                        "--mode", "ptt", "--talk-to-user", "bea"],
        )  # fmt: skip
        target = console.wait_event("talk_target_set", timeout=60)
        assert (target["kind"], target["user"]) == ("direct", "bea")
        wait_for(lambda: hears(page, CONSOLE_TONE), "bea's phone playing the console", 60)
        banner = wait_for(
            lambda: page.is_visible("#cut-in") and page.inner_text("#cut-in"),
            "the direct-talk banner",
        )
        assert banner == "sup さんからあなたへの個別通話", banner
        cues = [e["cue"] for e in diag_events(page, "cue")]
        assert "direct" in cues, cues
        console.proc.terminate()
        console.wait(30)
        wait_for(lambda: not page.is_visible("#cut-in"), "the banner gone with the talk")
        assert not errors, errors
    finally:
        browser.close()
        if console is not None and console.proc.poll() is None:
            console.proc.kill()
    _, starts = _heard_console(other)
    samples, rate = read_mono(other.record)  # type: ignore[arg-type]
    assert starts == [] and loud_seconds(samples, rate) < 0.2, (loud_seconds(samples, rate), starts)
