"""The realistic Wi-Fi → LTE handover mid-talk: the phones' second network (LTE, kept attached
while on Wi-Fi) is up from the start (a second veth with 127.0.0.6, voice_server/bench/netchange),
so Chromium gathers a host candidate on it with the first offer; then the address the talker's
selected pair uses goes away (removed, and cut with nftables). Audio resumes on the same session
with the same DTLS, no rejoin. The gap at the listener is printed with each page's steps (no
speed assertion: ``bench network --change handover`` measures it), and when each page's
selected pair left the cut address: Chromium keeps its old pair until it has received nothing
on it for 2.5 s and then waits 1 s more before switching (its ICE controller's defaults), ICE
restart or not; the server follows the page's media to the new address at once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.audio import write_bursts
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import connected, hears
from tests.e2e.test_web_tcp import metric
from tests.servers import ServerProcess
from voice_server.bench.netchange import (
    ICE_TIMELINE,
    LOCAL_ADDRESSES,
    RX_TIMELINE,
    SECOND_ADDRESS,
    SELECTED_ADDRESS,
    add_second_network,
    cut_address,
    longest_gap_ms,
    restore,
    switched_ms,
)
from voice_server.bench.netns import BROWSER_ADDRESS

pytestmark = pytest.mark.e2e

FREQ = 440.0


def test_audio_resumes_on_the_same_session_after_a_handover_to_the_second_network(
    pw: Any, e2e_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    srv = e2e_server
    tone = write_bursts(tmp_path_factory.mktemp("ho") / "a.wav", FREQ, on_seconds=3.0,
                        off_seconds=0.2)  # fmt: skip
    add_second_network()
    cut = None
    try:
        talker = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=tone)
        listener = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=None)
        pages = (talker, listener)
        try:
            wait_for(lambda: connected(talker) and connected(listener), "both pages joined")
            wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker")
            for page in pages:  # both networks are host candidates from the start
                assert page.evaluate(LOCAL_ADDRESSES) == [BROWSER_ADDRESS, SECOND_ADDRESS]
            cut = wait_for(lambda: talker.evaluate(SELECTED_ADDRESS), "the talker's pair")
            before = [p.evaluate(SELECTED_ADDRESS) for p in pages]
            sessions = [p.evaluate("window.voiceDiag.conn.sessionId") for p in pages]
            handshakes = metric(srv, "voice_media_dtls_handshakes_total")
            listener.evaluate(RX_TIMELINE)
            for p in pages:
                p.evaluate(ICE_TIMELINE)
            time.sleep(1.0)  # a second of the timeline before the cut (not a wait for an event)
            cut_ms = time.time() * 1000
            cut_address(srv.media_port, cut)

            def resumed() -> bool:
                timeline = listener.evaluate("window.__rx")
                later = [n for t, n in timeline if t > cut_ms + 200]
                return len(later) > 10 and later[-1] > later[0] + 25  # 0.5 s of audio again

            wait_for(resumed, "audio flowing again after the handover", timeout=60)
            wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker again")
            gap = longest_gap_ms(listener.evaluate("window.__rx"), cut_ms)
            after = [p.evaluate(SELECTED_ADDRESS) for p in pages]
            steps = [
                [(e["kind"], e.get("why"), round(e["wall"] - cut_ms))
                 for e in p.evaluate("window.voiceDiag.events")
                 if e["wall"] >= cut_ms and e["kind"] in ("ice_restart", "restart_offer",
                                                          "renegotiated")]
                for p in pages
            ]  # fmt: skip
            switched = [switched_ms(p.evaluate("window.__ice"), cut, cut_ms) for p in pages]
            print(f"handover: gap {gap:.0f} ms at the listener; selected {before} -> {after}, "
                  f"switched at {switched} ms (talker, listener); steps (ms after the cut): "
                  f"talker {steps[0]}, listener {steps[1]}")  # fmt: skip
            assert after[0] not in (None, cut)
            assert [p.evaluate("window.voiceDiag.conn.sessionId") for p in pages] == sessions
            assert metric(srv, "voice_media_dtls_handshakes_total") == handshakes  # DTLS kept
            for page in pages:
                kinds = [e["kind"] for e in page.evaluate("window.voiceDiag.events")]
                assert "lost" not in kinds, kinds
            assert not talker.errors and not listener.errors
        finally:
            talker.context.browser.close()
            listener.context.browser.close()
    finally:
        restore(current=cut or BROWSER_ADDRESS)
