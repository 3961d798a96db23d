"""The phone app renegotiates its live peer connection: a channel heard mid-call arrives on new
slot m-lines while the audio already flowing goes on (Chromium, private network namespace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.audio import write_tone
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.servers import ServerProcess
from tests.voiceclients import start_client

pytestmark = pytest.mark.e2e


def near(page: Any, mid: str, freq: float) -> bool:
    hz = page.evaluate(f"window.voiceDiag.dominantHz('{mid}')")
    return hz is not None and abs(hz - freq) < 20


def kinds(page: Any) -> list[str]:
    return [e["kind"] for e in page.evaluate("window.voiceDiag.events")]


def slot(page: Any, mid: str) -> dict[str, Any]:
    stats: dict[str, Any] = page.evaluate("window.voiceDiag.stats()")
    return dict(stats["inbound"].get(mid) or {})


def test_a_monitored_channel_is_added_to_the_live_peer_connection_without_a_gap(
    pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    srv = e2e_server
    # steady tones for as long as the test runs: sent with the gate open (a steady tone stops
    # counting as voice after ~15 s)
    ops = start_client(srv, tmp_path, "ann", play=write_tone(tmp_path / "a.wav", 440, 2.0),
                       loop=True, duration=300, extra_args=["--mode", "open"])  # fmt: skip
    hq_tone = write_tone(tmp_path / "b.wav", 660, 2.0)
    hq = start_client(srv, tmp_path, "bea", channel="hq", play=hq_tone, loop=True, duration=300,
                      extra_args=["--mode", "open"])  # fmt: skip
    page = open_page(pw, device_link(srv, srv.token("sup", "ops", "hq")), audio=None)

    def window_from(start: dict[str, Any]) -> dict[str, Any]:
        """Slot 1's stats once ~3 s more of ops audio (150 packets) has arrived."""
        return wait_for(
            lambda: (
                (now := slot(page, "1"))["packetsReceived"] - start["packetsReceived"] > 150 and now
            ),
            "ops packets",
        )

    try:
        wait_for(lambda: near(page, "1", 440), "the page hearing ops on slot 1")
        wait_for(lambda: slot(page, "1").get("packetsReceived", 0) > 100, "steady ops audio")
        # a control window without renegotiation: what this machine conceals anyway (a busy
        # one starves the browser's audio thread now and then)
        control_start = slot(page, "1")
        before = window_from(control_start)
        control = before["concealedSamples"] - control_start["concealedSamples"]
        page.evaluate(
            "window.voiceDiag.conn.send({type: 'route', sends: ['ops'], hears: ['ops', 'hq']})"
        )
        wait_for(lambda: "renegotiated" in kinds(page), "the renegotiation answer")
        wait_for(lambda: near(page, "4", 660), "the page hearing hq on the new slot m-lines")
        after = window_from(before)  # a stretch of ops audio through and after it
        assert near(page, "1", 440)  # ops went on, on the same slot

        # a gap would be played as concealment: a new peer connection or a stalled slot conceals
        # a second or more; allowed are a few packets' worth beyond what the control window
        # concealed, 250 ms (a busy machine's browser once concealed 91 ms while it applied the
        # new description, its control window none)
        def played(a: dict[str, Any], b: dict[str, Any]) -> float:
            return max(1.0, (b["totalSamplesDuration"] - a["totalSamplesDuration"]) * 48_000)

        rate = control / played(control_start, before)  # concealed share without renegotiation
        concealed = after["concealedSamples"] - before["concealedSamples"]
        allowed = 48_000 * 0.25 + 2 * rate * played(before, after)
        assert concealed < allowed, (control, before, after)
        media = [e for e in page.evaluate("window.voiceDiag.events") if e["kind"] == "media"]
        assert [e["state"] for e in media].count("connected") == 1  # one peer connection
        assert not page.errors, page.errors
    finally:
        page.context.browser.close()
        for c in (ops, hq):
            c.proc.terminate()
            c.wait()
