"""voice-client against a real WebRTC peer (aiortc in the server's role) over 127.0.0.1:
the microphone reaches the server with RFC 6464 levels, and a slot's audio is recorded."""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import subprocess
import sys
import wave
from array import array
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def write_tone(
    path: Path, freq: float, seconds: float, rate: int = 16000, amp: int = 10000
) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(
            b"".join(
                struct.pack("<hh", v, v)
                for v in (
                    int(amp * math.sin(2 * math.pi * freq * i / rate))
                    for i in range(int(rate * seconds))
                )
            )
        )


def zero_crossing_rate(samples: array[int]) -> float:
    zc = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return zc / (len(samples) / 48000)


def test_client_talks_and_hears_through_a_standard_webrtc_peer(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'clients' / 'headset'}"}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "integration" / "aiortc_media_server.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        talk = tmp_path / "talk.wav"
        write_tone(talk, 440, 2.0)  # 16 kHz stereo in: converted to 48 kHz mono
        heard = tmp_path / "heard.wav"
        client = subprocess.run(
            [
                sys.executable,
                "-m",
                "voice_client.cli",
                "--server",
                f"http://127.0.0.1:{port}",
                "--channel",
                "ops",
                "--token",
                "t",
                "--device-id",
                "hs-1",
                "--play",
                str(talk),
                "--loop",
                "--record",
                str(heard),
                "--duration",
                "5",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        report = json.loads(server.communicate(timeout=30)[0].splitlines()[-1])
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert client.returncode == 0, client.stderr
    assert client.stderr == ""
    events = [json.loads(line) for line in client.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "joined"
    assert {"event": "media", "state": "connected"}.items() <= next(
        e for e in events if e.get("state") == "connected"
    ).items()
    assert "talk_started" in kinds

    # the server heard the microphone: a 440 Hz tone (880 zero crossings a second)
    assert report["frames"] > 100
    assert 800 < report["zero_crossings_per_s"] < 960, report
    assert report["rms"] > 2000
    # ... with RFC 6464 levels on the wire: the tone is ~-13 dBov, so level ~13
    assert len(report["levels"]) > 100
    assert all(0 <= lv <= 127 for lv in report["levels"])
    loud = sorted(report["levels"])[len(report["levels"]) // 2]
    assert 8 <= loud <= 20, report["levels"][:20]

    # the client recorded slot 1: an 880 Hz tone, 48 kHz mono 16-bit
    with wave.open(str(heard)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        samples = array("h", w.readframes(w.getnframes()))
    assert len(samples) > 48000 * 2
    tail = samples[-48000 * 2 : -4800]  # a stretch well inside the call
    assert 1680 < zero_crossing_rate(tail) < 1840
