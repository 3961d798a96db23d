"""Emergencies with real processes and real audio: voice-clients (aiortc) raise one with
``--emergency-key`` on a terminal (a pty): two presses, the 5 s countdown, then the raise. A
cancel within the countdown raises nothing. During the open window the raiser holds a level-3
slot whatever their level: a quiet voice (about -47 dBFS, under the client's -45 dBFS gate)
that nobody heard before is heard, a listen-only member with a silent microphone talks, and
the burst is kept for the call log as ``kind=emergency``."""

from __future__ import annotations

import os
import pty
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts import org_server
from tests.audio import goertzel_power, read_mono, write_tone
from tests.servers import ServerProcess
from tests.voiceclients import ClientRun, start_client

pytestmark = pytest.mark.integration
TONE = 440.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with org_server(tmp_path_factory.mktemp("emergency-media")) as srv:
        srv.cli("channels", "assign", "ops", "--listener", "ito")
        yield srv


def raiser(
    server: ServerProcess, tmp: Path, name: str, play: Path, duration: float
) -> tuple[ClientRun, int]:
    """A voice-client whose standard input is a terminal we type into."""
    master, slave = pty.openpty()
    run = start_client(
        server,
        tmp,
        name,
        play=play,
        loop=True,
        record=False,
        duration=duration,
        extra_args=["--emergency-key", "!"],
        stdin=slave,
    )
    os.close(slave)
    return run, master


def press(master: int, times: int) -> None:
    for _ in range(times):
        os.write(master, b"!")
        time.sleep(0.3)


def tone_power(samples: list[int], rate: int, start_s: float, end_s: float) -> float:
    part = samples[int(start_s * rate) : int(end_s * rate)]
    return goertzel_power(part, rate, TONE) / max(1, len(part)) ** 2


def test_a_quiet_voice_is_heard_at_level_3_once_the_emergency_is_raised(
    server: ServerProcess, tmp_path: Path
) -> None:
    quiet = write_tone(tmp_path / "quiet.wav", TONE, 4.0, amplitude=200)  # about -47 dBFS
    listener = start_client(server, tmp_path, "kato", duration=40)
    sato, keys = raiser(server, tmp_path, "sato", quiet, duration=34)
    try:
        for c in (listener, sato):
            c.wait_event("media", state="connected", timeout=45)
        joined = time.monotonic()
        time.sleep(3)  # the gate keeps the quiet voice in: nothing is heard
        press(keys, 3)  # two presses arm it, the third cancels the countdown
        sato.wait_event("emergency_countdown", timeout=20)
        sato.wait_event("emergency_cancelled", timeout=20)
        time.sleep(6)  # past the countdown: nothing was raised
        press(keys, 2)
        sato.wait_event("emergency_sent", timeout=20)
        sato.wait_event("emergency_window", timeout=20, seconds=10.0)
        raised_after = time.monotonic() - joined
        started = listener.wait_event("talk_started", timeout=20, kind="emergency")
        assert started["speaker"]["sub"] == "sato" and started["priority"] == 3
        assert listener.wait(60) == 0 and sato.wait(60) == 0
    finally:
        os.close(keys)
    assert [e["state"] for e in sato.of("emergency_update")][:1] == ["raised"]
    raises = [e for e in sato.of("emergency_update") if e["state"] == "raised"]
    assert len(raises) == 1  # the cancelled countdown raised nothing
    sato_talks = [e for e in listener.of("talk_started") if e["speaker"]["sub"] == "sato"]
    assert {e["kind"] for e in sato_talks} == {"emergency"}  # never heard before the raise
    assert listener.record is not None
    samples, rate = read_mono(listener.record)
    heard = tone_power(samples, rate, raised_after + 1, raised_after + 8)
    before = tone_power(samples, rate, 1, raised_after - 1)
    assert heard > 20 * max(before, 1e-3), (heard, before)


def test_a_listen_only_member_with_a_silent_microphone_talks_in_an_emergency(
    server: ServerProcess, tmp_path: Path
) -> None:
    silent = write_tone(tmp_path / "silent.wav", TONE, 2.0, amplitude=0)
    listener = start_client(server, tmp_path, "kato", duration=30, record=False)
    ito, keys = raiser(server, tmp_path, "ito", silent, duration=24)
    try:
        for c in (listener, ito):
            c.wait_event("media", state="connected", timeout=45)
        press(keys, 2)
        ito.wait_event("emergency_sent", timeout=20)
        started = listener.wait_event("talk_started", timeout=20, kind="emergency")
        assert started["speaker"]["sub"] == "ito" and started["priority"] == 3
        stopped = listener.wait_event("talk_stopped", timeout=30)
        assert stopped["speaker"]["sub"] == "ito"  # the window ended: so did the burst
        assert listener.wait(60) == 0 and ito.wait(60) == 0
    finally:
        os.close(keys)
    spooled = [
        p
        for p in (server.data_dir / "spool").glob("*.ogg")
        if b"VOICE_SPEAKER_ID=ito" in p.read_bytes()
    ]
    assert spooled and all(b"VOICE_KIND=emergency" in p.read_bytes() for p in spooled)
