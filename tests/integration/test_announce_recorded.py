"""Recorded announcements against a real server: a WAV and an MP3 upload are played into the
channel like spoken ones (a voice-client hears the tone) and logged; a file that is not audio,
too large or too long is refused with nothing stored."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from tests.announcing import boss_of_a
from tests.audio import goertzel_power, heard_alone, loud_part, read_mono, write_tone
from tests.servers import running_server
from tests.voiceclients import start_client

pytestmark = pytest.mark.integration


def mp3_tone(freq: float, seconds: float) -> bytes:
    """An MP3 made with PyAV (a format phones and PCs record in)."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=44100)
        stream.layout = "mono"
        n = int(44100 * seconds)
        samples = (8000 * np.sin(2 * math.pi * freq * np.arange(n) / 44100)).astype("<i2")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def test_uploaded_recordings_are_played_and_bad_files_refused_with_nothing_stored(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("a", "b")) as server:
        headers = boss_of_a(server)
        url = f"{server.url}/api/v1/announcements"

        def upload(data: bytes, name: str, **fields: Any) -> httpx.Response:
            return httpx.post(
                f"{url}/recorded",
                files={"file": (name, data, "application/octet-stream")},
                data=fields,
                headers=headers,
                timeout=60,
            )

        def stored() -> tuple[int, int]:
            items = httpx.get(url, headers=headers, timeout=30).json()["items"]
            shared = server.data_dir / "clips" / "_shared"
            return len(items), len(list(shared.glob("*"))) if shared.exists() else 0

        wav = write_tone(tmp_path / "tone.wav", 660.0, 2.0).read_bytes()
        # refusals first: nothing may be stored by any of them
        assert (r := upload(b"hello, not audio at all", "note.txt")).status_code == 415, r.text
        assert r.json()["error"] == "not_audio"
        long_wav = write_tone(tmp_path / "long.wav", 440.0, 121.0, rate=8000).read_bytes()
        assert (r := upload(long_wav, "long.wav")).status_code == 422, r.text
        assert r.json()["error"] == "too_long"
        big = wav + b"\0" * (10 * 1024 * 1024)
        assert (r := upload(big, "big.wav")).status_code == 413, r.text
        assert r.json()["error"] == "too_large"
        r = upload(wav, "tone.wav", channels="b")
        assert (r.status_code, r.json()["error"]) == (403, "channel_not_supervised")
        r = httpx.post(f"{url}/recorded", json={"text": "x"}, headers=headers, timeout=30)
        assert (r.status_code, r.json()["error"]) == (400, "no_file")
        assert stored() == (0, 0)

        listener = start_client(server, tmp_path, "ma", channel="a", duration=40)
        listener.wait_event("media", state="connected", timeout=45)
        r = upload(wav, "tone.wav", channels="a")
        assert r.status_code == 201, r.text
        wav_id = r.json()["id"]
        assert 2.5 <= r.json()["seconds"] <= 3.5  # lead + 2 s + tail
        started = listener.wait_event("talk_started", timeout=45, kind="announcement")
        assert started["speaker"]["name"] == "boss"
        r = upload(mp3_tone(660.0, 1.5), "memo.mp3", channels="a", text="給水車が到着しました")
        assert r.status_code == 201, r.text
        mp3_id = r.json()["id"]
        done = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(done) < 2:
            for ann in (wav_id, mp3_id):
                body = httpx.get(f"{url}/{ann}", headers=headers, timeout=30).json()
                if body["status"] != "playing":
                    done[ann] = body
            time.sleep(0.3)
        assert done[wav_id]["status"] == "done", done[wav_id]
        assert done[mp3_id]["status"] == "done" and done[mp3_id]["text"] == "給水車が到着しました"
        listener.proc.terminate()
        listener.wait()
        rows = httpx.get(
            f"{server.url}/api/v1/utterances", params={"channel": "a"}, headers=headers
        ).json()["items"]
        assert sorted(r["text"] for r in rows) == ["給水車が到着しました", "録音放送"]
        assert {(r["kind"], r["model"]) for r in rows} == {("announcement", "recorded")}
        assert stored() == (2, 2)
    samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
    part = loud_part(samples, rate)
    control = goertzel_power(part, rate, 550.0)
    assert goertzel_power(part, rate, 660.0) > 20 * control
    # the headset played its chime before each announcement (the clips hold no chime)
    assert heard_alone(part, rate, 1046.5, [550.0, 660.0])  # its second note
