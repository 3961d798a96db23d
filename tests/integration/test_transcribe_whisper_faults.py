"""The Whisper sidecar killed (SIGKILL) in the middle of a Japanese burst: nothing is committed
by it, and after a restart the burst is transcribed from the spool (Whisper text, one utterance,
the spool file moved to its clip)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.integration.test_transcription import api_token, metric, utterances, wait_for
from tests.integration.test_transcription_faults import logged, sidecar
from tests.japanese import whisper_model
from tests.servers import running_server
from tests.voiceclients import start_client
from voice_server.tts.openjtalk import write_wav

pytestmark = pytest.mark.integration


def test_a_whisper_sidecar_killed_mid_burst_transcribes_it_after_restart(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "ja.wav", ["避難所Bの受付は午後5時までです"], gap_seconds=0.5)
    args = ("--engine", "whisper", "--model", str(whisper_model()), "--cpu-priority", "normal")
    with running_server(tmp_path / "srv") as server:
        with sidecar(server, *args) as first:
            wait_for(lambda: metric(server, "voice_transcription_link_up") == 1, 60, "sidecar")
            talker = start_client(server, tmp_path, "kim", play=wav, duration=6, record=False)
            wait_for(
                lambda: metric(server, "voice_transcriber_live_bursts_total") >= 1, 10, "burst"
            )
            time.sleep(1.0)
            first.send_signal(signal.SIGKILL)
            first.wait()
            assert talker.wait() == 0, talker.stderr
        assert logged(server) == (0, 0)
        with sidecar(server, *args):
            token = api_token(server, "ops")
            items = wait_for(lambda: utterances(server, token).json()["items"], 120, "catch-up")
        assert len(items) == 1 and items[0]["model"] == "whisper-base"
        assert "受付" in items[0]["text"] or "午後5時" in items[0]["text"], items[0]["text"]
        assert not list((server.data_dir / "spool").glob("*.ogg*"))
