"""Hostile datagrams during call set-up and calls: dropped and counted, audio intact."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.audio import dominant, loud_seconds, read_mono, write_tone
from tests.hostile import HostileSender
from tests.servers import running_server
from tests.voiceclients import start_client

pytestmark = pytest.mark.integration


def drops(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("voice_media_drops_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_flood_of_bad_datagrams_does_not_break_joins_or_audio(tmp_path: Path) -> None:
    with (
        running_server(tmp_path / "srv") as server,
        HostileSender(("127.0.0.1", server.media_port), rate=1500) as hostile,
    ):
        time.sleep(0.5)  # the flood is on before anyone joins
        tone = write_tone(tmp_path / "a.wav", 440, 3.0)
        listener = start_client(server, tmp_path, "lis", duration=9)
        time.sleep(1.5)
        talker = start_client(server, tmp_path, "tlk", play=tone, duration=6, record=False)
        assert talker.wait() == 0, talker.stderr
        assert listener.wait() == 0, listener.stderr
        samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
        assert dominant(samples, rate, [440.0, 660.0, 880.0]) == 440.0
        assert loud_seconds(samples, rate) >= 2.5
        counted = drops(server.url)
        assert hostile.sent > 5000
        assert counted["unknown_source"] > 1000 and counted["bad_stun"] > 500
        assert server.proc is not None and server.proc.poll() is None
        assert "Traceback" not in server.log()
