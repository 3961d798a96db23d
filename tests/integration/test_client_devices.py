"""voice-client with real audio devices: PortAudio over a private PulseAudio server whose null
sinks stand in for a headset (the tone played into one sink's monitor is the microphone, what
the client plays lands in another sink, read back from its monitor)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import pulse
from tests.audio import dominant, goertzel_power, loud_part, read_mono, write_bursts, write_tone
from tests.servers import ServerProcess
from tests.voiceclients import start_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(pulse.missing() is not None, reason=str(pulse.missing())),
]

FREQS = [440.0, 523.0, 660.0, 784.0, 880.0]


def device_client(
    server: ServerProcess, env: dict[str, str], name: str, *extra: str, duration: float
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "voice_client.cli",
        "--server",
        server.url,
        "--channel",
        "ops",
        "--token",
        server.token(name, "ops"),
        "--device-id",
        name,
        "--duration",
        str(duration),
        *extra,
    ]
    return subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_headset_device_mode_talks_from_the_microphone_and_plays_what_it_hears(
    server: ServerProcess, tmp_path: Path
) -> None:
    with pulse.pulse_server(tmp_path / "pulse", ("mic", "speaker")) as env:
        devices = subprocess.run(
            [sys.executable, "-m", "voice_client.cli", "--list-devices"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        assert devices.returncode == 0 and "pulse" in devices.stdout, devices
        # the headset: microphone = the "mic" sink's monitor, speaker = the "speaker" sink
        dev_env = {**env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"}
        headset = device_client(
            server, dev_env, "helmet", "--input", "--output", "--report-onsets", duration=16
        )
        listener = start_client(server, tmp_path, "desk", duration=16)
        heard = tmp_path / "speaker.wav"
        rec = subprocess.Popen(
            [
                "parec",
                "--device=speaker.monitor",
                "--file-format=wav",
                "--rate=48000",
                "--channels=1",
                "--format=s16le",
                str(heard),
            ],
            env={**os.environ, **env},
        )
        time.sleep(3)
        # someone talks to the headset (523 Hz) ...
        talker_tone = write_tone(tmp_path / "t.wav", 523.0, 2.5)
        talker = start_client(
            server, tmp_path, "tower", play=talker_tone, duration=4.5, record=False
        )
        # ... then the headset's wearer speaks (784 Hz bursts into the microphone)
        assert talker.wait() == 0, talker.stderr
        speech = write_bursts(tmp_path / "m.wav", 784.0, on_seconds=1.0, off_seconds=1.0)
        subprocess.run(
            ["paplay", "--device=mic", str(speech)], env={**os.environ, **env}, check=True
        )
        subprocess.run(
            ["paplay", "--device=mic", str(speech)], env={**os.environ, **env}, check=True
        )
        out, err = headset.communicate(timeout=30)
        assert headset.returncode == 0, err
        assert listener.wait() == 0, listener.stderr
        rec.terminate()
        rec.wait(5)

    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    audio = [e for e in events if e["event"] == "audio"]
    assert audio and audio[0]["input"] and audio[0]["output"]
    # what the headset heard was played on its output device, its onsets timed at the output
    samples, rate = read_mono(heard)
    assert dominant(samples, rate, FREQS) == 523.0
    assert [e for e in events if e["event"] == "onset" and e["at"] == "play"]
    # what its wearer said reached the listener, and only while speaking (two bursts)
    said, rate = read_mono(listener.record)  # type: ignore[arg-type]
    part = loud_part(said, rate)
    assert goertzel_power(part, rate, 784.0) > 5 * goertzel_power(part, rate, 650.0)
    sending = [e["on"] for e in events if e["event"] == "sending"]
    assert sending.count(True) >= 2 and sending.count(False) >= 1
    starts = [e for e in listener.of("talk_started") if e["speaker"]["sub"] == "helmet"]
    assert len(starts) >= 2


def test_no_audio_device_is_one_clear_line(server: ServerProcess, tmp_path: Path) -> None:
    env = {"PULSE_SERVER": f"unix:{tmp_path}/nothing-here", "ALSA_CONFIG_PATH": ""}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voice_client.cli",
            "--server",
            server.url,
            "--channel",
            "ops",
            "--token",
            server.token("nodev", "ops"),
            "--input",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if x.startswith("voice-client:")]
    assert lines == [
        "voice-client: error: no audio input device found "
        "(no sound card, and no PulseAudio/PipeWire running?)"
    ], done.stderr
