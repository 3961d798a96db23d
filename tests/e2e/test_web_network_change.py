"""A network change mid-talk: the phones' address moves (the namespace's veth loses 127.0.0.2
and gets 127.0.0.5, as a phone moving from Wi-Fi to LTE gets a new address). The phone app asks
for an ICE restart (`ice_restart` on a stall or ICE disconnect), the server answers with new ICE
credentials on the same transport, the browser checks again from its new address, and audio
resumes on the same session with the same DTLS (no new handshake, no rejoin). The old path is cut
with nftables as the address goes (127.0.0.0/8 stays local on ``lo``, so the kernel would still
deliver from the old address). The gap is
measured at the listener (the longest time without a received packet) and printed, with each
page's steps after the move: the restart asked, the restart offer, the answer, and the first
local candidate on the new address (Chromium on Linux learns a new address only ~2 s after it
appears, its network-change notifier's debounce: the floor of this gap, not ours)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from tests.audio import write_bursts
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import connected, hears
from tests.e2e.test_web_tcp import metric
from tests.servers import ServerProcess
from voice_server.bench.netchange import (
    NEW_ADDRESS,
    RX_TIMELINE,
    longest_gap_ms,
    move_address,
    restore,
)
from voice_server.bench.turnrelay import nft

pytestmark = pytest.mark.e2e

FREQ = 440.0
STEPS = ("ice_restart", "restart_offer", "renegotiated", "candidate")


def steps(events: list[dict[str, Any]], moved_ms: float) -> list[tuple[str, int]]:
    """A page's restart steps after the move (ms after it); candidates on the new address only."""
    return [
        (e["kind"], round(e["wall"] - moved_ms))
        for e in events
        if e["kind"] in STEPS
        and e["wall"] >= moved_ms
        and (e["kind"] != "candidate" or e.get("address") == NEW_ADDRESS)
    ]


def test_audio_resumes_on_the_same_session_after_the_address_moves(
    pw: Any, e2e_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    srv = e2e_server
    tone = write_bursts(tmp_path_factory.mktemp("nc") / "a.wav", FREQ, on_seconds=3.0,
                        off_seconds=0.2)  # fmt: skip
    talker = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=tone)
    listener = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=None)
    try:
        wait_for(lambda: connected(talker) and connected(listener), "both pages joined")
        wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker")
        sessions = [p.evaluate("window.voiceDiag.conn.sessionId") for p in (talker, listener)]
        handshakes = metric(srv, "voice_media_dtls_handshakes_total")
        listener.evaluate(RX_TIMELINE)
        time.sleep(1.0)  # a second of the timeline before the move (not a wait for an event)
        moved_ms = time.time() * 1000
        move_address(srv.media_port)
        try:
            wait_for(
                lambda: metric(srv, "voice_media_ice_restarts_total") >= 1,
                "an ICE restart asked for and offered",
            )

            def resumed() -> bool:
                timeline = listener.evaluate("window.__rx")
                later = [n for t, n in timeline if t > moved_ms + 200]
                return len(later) > 10 and later[-1] > later[0] + 25  # 0.5 s of audio again

            wait_for(resumed, "audio flowing again after the move", timeout=60)
            wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker again")
            gap = longest_gap_ms(listener.evaluate("window.__rx"), moved_ms)
            events = [p.evaluate("window.voiceDiag.events") for p in (talker, listener)]
            asked = [
                [(e["why"], round(e["wall"] - moved_ms)) for e in evs if e["kind"] == "ice_restart"]
                for evs in events
            ]
            done = [steps(evs, moved_ms) for evs in events]
            print(f"network change: gap {gap:.0f} ms at the listener; restarts asked (ms after "
                  f"the move): talker {asked[0]}, listener {asked[1]}; steps: talker "
                  f"{done[0]}, listener {done[1]}")  # fmt: skip
            now = [p.evaluate("window.voiceDiag.conn.sessionId") for p in (talker, listener)]
            assert now == sessions  # no rejoin
            assert metric(srv, "voice_media_dtls_handshakes_total") == handshakes  # DTLS kept
            for page in (talker, listener):
                kinds = [e["kind"] for e in page.evaluate("window.voiceDiag.events")]
                assert "lost" not in kinds, kinds
            assert not talker.errors and not listener.errors
        finally:
            restore()
    finally:
        talker.context.browser.close()
        listener.context.browser.close()


SELECTED_PORT = """async () => {
  let pair = null, local = {};
  (await window.voiceDiag.call.pc.getStats()).forEach((s) => {
    if (s.type === "transport") pair = s.selectedCandidatePairId;
    if (s.type === "local-candidate") local[s.id] = s.port;
  });
  let port = null;
  (await window.voiceDiag.call.pc.getStats()).forEach((s) => {
    if (s.type === "candidate-pair" && s.id === pair) port = local[s.localCandidateId];
  });
  return port;
}"""


def test_a_silent_listener_whose_path_dies_mid_talk_restarts_ice_and_hears_again(
    pw: Any, e2e_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Only the listener's path dies (its UDP port cut off both ways, as a NAT that forgets the
    binding): it sends no voice, so only what the signaling says (someone is talking to it) can
    tell it audio is missing. It asks for a restart ("listen_stall"); the restart's new local
    port gets through, and it hears again on the same session."""
    srv = e2e_server
    folder = tmp_path_factory.mktemp("ls")
    tone = write_bursts(folder / "a.wav", FREQ, on_seconds=3.0, off_seconds=0.2)
    quiet = write_bursts(folder / "q.wav", FREQ, on_seconds=0.0, off_seconds=1.0)
    talker = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=tone)
    listener = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=quiet)
    table = "voice_listen_stall"
    try:
        wait_for(lambda: connected(talker) and connected(listener), "both pages joined")
        wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker")
        session = listener.evaluate("window.voiceDiag.conn.sessionId")
        port = wait_for(lambda: listener.evaluate(SELECTED_PORT), "the listener's selected port")
        wait_for(lambda: listener.evaluate("window.voiceDiag.call.expectsAudio()"),
                 "the listener knowing someone talks to it")  # fmt: skip
        cut_ms = time.time() * 1000
        nft(
            f"table inet {table} {{\n  chain out {{ type filter hook output priority 0; "
            f"policy accept;\n    udp sport {srv.media_port} udp dport {port} drop;\n"
            f"    udp sport {port} udp dport {srv.media_port} drop;\n  }}\n}}\n"
        )
        try:
            wait_for(
                lambda: [
                    e for e in listener.evaluate("window.voiceDiag.events")
                    if e["kind"] == "ice_restart" and e["wall"] >= cut_ms
                ],
                "the listener asking for an ICE restart",
            )  # fmt: skip
            asked = [
                (e["why"], round(e["wall"] - cut_ms))
                for e in listener.evaluate("window.voiceDiag.events")
                if e["kind"] == "ice_restart" and e["wall"] >= cut_ms
            ]
            print(f"listener stall: restarts asked (ms after the cut): {asked}")
            assert asked[0][0] == "listen_stall", asked
            wait_for(lambda: listener.evaluate(SELECTED_PORT) not in (None, port),
                     "the listener on a new local port")  # fmt: skip
            wait_for(lambda: hears(listener, FREQ), "the listener hearing the talker again")
        finally:
            subprocess.run(["nft", "delete", "table", "inet", table], check=False)
        assert listener.evaluate("window.voiceDiag.conn.sessionId") == session  # no rejoin
        kinds = [e["kind"] for e in listener.evaluate("window.voiceDiag.events")]
        assert "lost" not in kinds, kinds
        assert not talker.errors and not listener.errors
    finally:
        talker.context.browser.close()
        listener.context.browser.close()
