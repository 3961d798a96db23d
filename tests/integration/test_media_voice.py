"""The media plane with real aiortc peers (`voice-client` processes) on 127.0.0.1."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio import dominant, loud_seconds, read_mono, write_bursts, write_tone
from tests.servers import ServerProcess, running_server
from tests.voiceclients import start_client

pytestmark = pytest.mark.integration

FREQS = [440.0, 660.0, 880.0, 1100.0, 330.0]


@pytest.fixture(scope="module")
def media_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("media")) as srv:
        yield srv


def metric(server: ServerProcess, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_tone_reaches_every_listener_and_not_the_talker(
    media_server: ServerProcess, tmp_path: Path
) -> None:
    tone = write_tone(tmp_path / "a440.wav", 440, 3.0)
    # the listeners stay until told to leave (SIGTERM), however slow a busy machine starts them
    listeners = [start_client(media_server, tmp_path, n, duration=120) for n in ("bea", "cai")]
    for c in listeners:
        c.wait_event("media", timeout=60, state="connected")
    talker = start_client(media_server, tmp_path, "ann", play=tone, duration=12)
    assert talker.wait(timeout=120) == 0, talker.stderr
    for c in listeners:
        c.wait_event("talk_stopped", timeout=30)
        c.proc.send_signal(signal.SIGTERM)
    for c in listeners:
        assert c.wait() == 0, c.stderr
        samples, rate = read_mono(c.record)  # type: ignore[arg-type]
        assert dominant(samples, rate, FREQS) == 440.0
        assert loud_seconds(samples, rate) >= 2.0
        started = c.of("talk_started")
        assert started and started[0]["speaker"]["sub"] == "ann" and started[0]["slot"] == 1
        assert c.of("talk_stopped")
    own, rate = read_mono(talker.record)  # type: ignore[arg-type]
    assert loud_seconds(own, rate) == 0.0  # the talker never hears itself


def test_four_talkers_three_slots_the_fourth_gets_slot_busy(
    media_server: ServerProcess, tmp_path: Path
) -> None:
    listener = start_client(media_server, tmp_path, "lis", duration=40)
    listener.wait_event("media", state="connected")
    talkers = []
    for i, name in enumerate(["t1", "t2", "t3"]):
        tone = write_tone(tmp_path / f"{name}.wav", FREQS[i + 1], 20.0)
        talkers.append(
            start_client(
                media_server,
                tmp_path,
                name,
                play=tone,
                duration=22,
                record=False,
                extra_args=["--mode", "open"],  # a steady tone is noise to the voice gate
            )
        )
    for t in talkers:  # the first three hold the slots (however slow the machine)
        t.wait_event("talk_started", timeout=30)
    late_tone = write_tone(tmp_path / "t4.wav", FREQS[4], 3.0)
    fourth = start_client(
        media_server,
        tmp_path,
        "t4",
        play=late_tone,
        duration=5,
        record=False,
        extra_args=["--mode", "open"],
    )
    assert fourth.wait() == 0, fourth.stderr
    for t in talkers:
        assert t.wait() == 0, t.stderr
    assert listener.wait() == 0, listener.stderr
    busy = fourth.of("slot_busy")
    assert busy and busy[0]["slots"] == 3
    starts = listener.of("talk_started")
    first = {e["speaker"]["sub"]: e["slot"] for e in starts if e["speaker"]["sub"] != "t4"}
    assert {first.get("t1"), first.get("t2"), first.get("t3")} == {1, 2, 3}
    # the fourth talker only gets a slot once one of the three has stopped (still talking)
    t4 = [e for e in starts if e["speaker"]["sub"] == "t4"]
    if t4:
        freed = [e for e in listener.of("talk_stopped") if e["slot"] == t4[0]["slot"]]
        assert freed and freed[0]["t"] <= t4[0]["t"]
    samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
    assert loud_seconds(samples, rate) >= 3.0


def test_leave_and_rejoin_then_audio_still_flows(
    media_server: ServerProcess, tmp_path: Path
) -> None:
    first = start_client(media_server, tmp_path, "rejoin", duration=3, record=False)
    assert first.wait() == 0, first.stderr
    listener = start_client(media_server, tmp_path, "rejoin", duration=9)  # same user, device
    time.sleep(1.5)
    tone = write_tone(tmp_path / "r.wav", 660, 3.0)
    talker = start_client(media_server, tmp_path, "speaker2", play=tone, duration=6, record=False)
    assert talker.wait() == 0, talker.stderr
    assert listener.wait() == 0, listener.stderr
    samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
    assert dominant(samples, rate, FREQS) == 660.0
    assert metric(media_server, "voice_media_dtls_handshakes_total") >= 3


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_a_talker_who_goes_mid_talk_is_heard_to_stop(
    how: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Leaving (SIGTERM: the client says ``leave``) or vanishing (SIGKILL: the grace period
    ends the session) while talking: the others get ``talk_stopped`` (their cut-in banners and
    talker marks go), not a talker who talks for ever."""
    env = {"VOICE_GRACE_SECONDS": "2"}
    with running_server(tmp_path_factory.mktemp("gone"), env=env) as server:
        listener = start_client(server, tmp_path, "lis", duration=60, record=False)
        listener.wait_event("media", state="connected", timeout=60)
        talker = start_client(
            server, tmp_path, "tal", play=write_tone(tmp_path / "t.wav", FREQS[0], 2.0),
            loop=True, duration=60, record=False, extra_args=["--mode", "open"],
        )  # fmt: skip
        started = listener.wait_event("talk_started", timeout=60)
        assert started["speaker"]["sub"] == "tal"
        getattr(talker.proc, how)()
        talker.proc.wait(30)
        stopped = listener.wait_event("talk_stopped", timeout=60)
        assert (stopped["speaker"]["sub"], stopped["slot"]) == ("tal", started["slot"])
        listener.proc.terminate()
        listener.wait(30)


@pytest.mark.parametrize("how", ["resume", "restart"])
def test_a_frozen_server_is_noticed_within_seconds_and_the_headset_hears_again(
    how: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The server freezes (SIGSTOP: its sockets stay open and nothing answers, as with a hung
    process or a pulled cable): the headset client, pinging every 2 s, calls the link dead 5 s
    after the server's last message (``disconnected``); once the server runs again (SIGCONT, or
    a new process on the same ports) it joins again by itself and hears the talker again."""
    with running_server(tmp_path_factory.mktemp("frozen")) as server:
        listener = start_client(
            server, tmp_path, "lis", duration=180, record=False, extra_args=["--report-onsets"]
        )
        listener.wait_event("media", state="connected", timeout=60)
        talker = start_client(
            server, tmp_path, "tal", loop=True, duration=180, record=False,
            play=write_bursts(  # loud, then quiet but still voice: one long burst, an onset
                tmp_path / "b.wav", FREQS[1], on_seconds=0.6, off_seconds=0.6, quiet_amplitude=300
            ),  # at the listener every 1.2 s
            extra_args=["--mode", "open"],
        )  # fmt: skip
        assert server.proc is not None
        frozen_proc = server.proc
        try:
            listener.wait_event("onset", timeout=60)  # the talker is heard
            frozen_proc.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()
            noticed, lost = listener.wait_arrival("disconnected", timeout=60)
            if how == "resume":
                frozen_proc.send_signal(signal.SIGCONT)
            else:
                server.stop(signal.SIGKILL)
                server.start()
            assert lost["reason"].startswith("no message from the server for 5."), lost
            print(f"frozen server noticed after {noticed - frozen:.2f} s ({how})")
            assert noticed - frozen < 10  # 5 s by the rule; the rest is a busy machine's slack
            _, back = listener.wait_arrival("joined", 60, lambda e: e["t"] > lost["t"])
            assert back["resumed"] is (how == "resume")
            listener.wait_arrival("onset", 60, lambda e: e["t"] > back["t"])  # heard again
        finally:
            frozen_proc.send_signal(signal.SIGCONT)
            for client in (talker, listener):
                client.proc.terminate()
                client.wait(30)
