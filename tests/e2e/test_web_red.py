"""Audio RED (RFC 2198) end to end: Chromium sends Opus in RED when the server offers it first;
a Chromium listener gets RED as sent and a headset client (aiortc: no RED) the primary frame,
both decoding cleanly; the call log's clip is plain Ogg Opus, identical in format to a clip
recorded with RED off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import goertzel_power, loud_part, read_mono, write_bursts
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import connected, hears
from tests.e2e.test_web_tcp import metric
from tests.servers import ServerProcess, running_server
from tests.voiceclients import start_client
from voice_server.calllog.burst import SPOOL_DIR
from voice_server.calllog.ogg import read_ogg_opus, read_pages
from voice_server.transcribe.decoder import OpusDecoder

pytestmark = pytest.mark.e2e

FREQ = 440.0

INBOUND_CODECS = """async () => {
  const stats = await window.voiceDiag.call.pc.getStats();
  const codecs = {}; const out = [];
  stats.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  stats.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio" && s.packetsReceived > 0) {
      out.push({ codec: codecs[s.codecId] || null, received: s.packetsReceived,
                 concealed: s.concealedSamples, samples: s.totalSamplesReceived });
    }
  });
  return out;
}"""


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tone") / "a.wav"
    return write_bursts(path, FREQ, on_seconds=1.2, off_seconds=1.6)


def clips(srv: ServerProcess) -> list[Path]:
    return sorted((srv.data_dir / SPOOL_DIR).glob("*.ogg"))


def clip_format(path: Path) -> tuple[bytes, frozenset[str], frozenset[int]]:
    """(OpusHead, tag names, the TOC's stereo flag and frame-count code) of a clip; every
    packet must decode to one 20 ms frame (a RED block header in front of the Opus frame would
    not). The TOC's configuration is left out: the encoder moves between SILK, hybrid and CELT
    with the signal, RED or not."""
    data = path.read_bytes()
    head = read_pages(data)[0].body
    ogg = read_ogg_opus(data)
    assert ogg.complete and ogg.packets
    dec = OpusDecoder(48000)
    sizes = {len(dec.decode(p)) for p in ogg.packets if p}
    assert sizes == {960 * 2}, sizes
    return head, frozenset(ogg.tags), frozenset(p[0] & 0x07 for p in ogg.packets if p)


def talk_and_clip(pw: Any, srv: ServerProcess, tone: Path) -> tuple[Any, Path]:
    talker = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=tone)
    wait_for(lambda: connected(talker), "the talker joined with media")
    first = wait_for(lambda: clips(srv), "a talk burst spooled for the call log", timeout=60)
    return talker, first[0]


@pytest.fixture(scope="module")
def plain_clip(
    pw: Any, namespace: None, tone: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A clip recorded with RED off (VOICE_AUDIO_RED=false)."""
    env = {"VOICE_AUDIO_RED": "false"}
    with running_server(tmp_path_factory.mktemp("nored"), env=env) as srv:
        talker, clip = talk_and_clip(pw, srv, tone)
        assert metric(srv, "voice_media_red_packets_in_total") == 0
        talker.context.browser.close()
        yield clip


def test_red_to_a_chromium_listener_primary_to_a_headset_and_a_plain_clip(
    pw: Any, namespace: None, tone: Path, plain_clip: Path, tmp_path: Path
) -> None:
    with running_server(tmp_path / "srv") as srv:
        listener = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=None)
        wait_for(lambda: connected(listener), "the listener joined with media")
        client = start_client(srv, tmp_path, "carol", duration=10)
        talker, clip = talk_and_clip(pw, srv, tone)
        try:
            wait_for(
                lambda: metric(srv, "voice_media_red_packets_in_total") >= 50,
                "Chromium sending Opus in RED",
            )
            wait_for(lambda: hears(listener, FREQ), "the Chromium listener hearing 440 Hz")
            inbound = wait_for(
                lambda: [s for s in listener.evaluate(INBOUND_CODECS) if s["received"] > 50],
                "the listener's inbound stats",
            )
            assert inbound, inbound  # (Chromium reports the decoded codec: opus)
            answer = listener.evaluate("window.voiceDiag.call.pc.localDescription.sdp")
            assert answer.count("a=rtpmap:63 red/48000/2") == 4, answer  # mic and 3 slots
            assert metric(srv, "voice_media_red_routed_total") >= 50  # RED to the listener
            assert client.wait() == 0, client.stderr
            samples, rate = read_mono(client.record)  # type: ignore[arg-type]
            part = loud_part(samples, rate)
            assert part, "the headset client recorded nothing"
            assert goertzel_power(part, rate, FREQ) > 20 * goertzel_power(part, rate, 550.0)
            assert metric(srv, 'voice_media_drops_total{reason="bad_red"}') == 0
            assert clip_format(clip) == clip_format(plain_clip)
            assert not talker.errors and not listener.errors
        finally:
            talker.context.browser.close()
            listener.context.browser.close()
