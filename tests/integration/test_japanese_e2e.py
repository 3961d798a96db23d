"""Japanese end to end with the Whisper engine: a voice-client speaks two generated sentences of
Japanese (Open JTalk) into a channel; the sidecar (``--engine whisper --cpu-priority normal``)
commits them with speaker and times; the dashboard's search finds them by a 2-character term
(漏れ) and a 3+-character one; the clip plays; the call log's text is exactly Whisper's text on
the burst's own clip (the pipeline adds nothing)."""

from __future__ import annotations

import html
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from tests.accounts import build_org, client, signin
from tests.integration.test_transcription import metric, wait_for
from tests.japanese import whisper_factory, whisper_model
from tests.servers import ServerProcess, free_port
from tests.voiceclients import start_client
from voice_server.calllog.model import parse_time
from voice_server.transcribe.direct import recognize_file
from voice_server.transcribe.errorrate import char_score
from voice_server.tts.openjtalk import write_wav

pytestmark = pytest.mark.integration
SENTENCES = ["市民体育館で水漏れが発生しています", "救急車を午後2時30分に手配しました"]
DEADLINE = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("ja")
    build_org(data)
    srv = ServerProcess(data, free_port(), free_port(socket.SOCK_DGRAM), {})
    srv.start()
    sidecar_log = (data / "sidecar.log").open("wb")
    sidecar = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voice_server.cli",
            "transcriber",
            "--server",
            srv.url,
            "--data-dir",
            str(data),
            "--engine",
            "whisper",
            "--model",
            str(whisper_model()),
            "--cpu-priority",
            "normal",
        ],
        stdout=sidecar_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: metric(srv, "voice_transcription_link_up") == 1, 60, "the sidecar")
        yield srv
    finally:
        sidecar.terminate()
        try:
            sidecar.wait(10)
        except subprocess.TimeoutExpired:
            sidecar.kill()
            sidecar.wait()
        sidecar_log.close()
        srv.stop()


def test_japanese_speech_is_committed_searchable_by_two_and_three_characters_and_plays(
    server: ServerProcess, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "ja.wav", SENTENCES, gap_seconds=2.0, lead_seconds=0.5)
    before = time.time()
    talker = start_client(server, tmp_path, "sato", play=wav, duration=12, record=False)
    assert talker.wait(60) == 0, talker.stderr
    with client(server) as c:
        signin(c, "boss")

        def found(q: str) -> str | None:
            page = c.get("/dashboard/search", params={"q": q})
            assert page.status_code == 200
            return page.text if "<audio" in page.text else None

        page = wait_for(lambda: found("漏れ"), DEADLINE, "an utterance with 漏れ")
        assert found("水漏れ") and found("体育館")
        assert 'id="no-partials"' in c.get("/dashboard/live/ops").text  # Whisper: no partials
        api = c.get("/api/v1/utterances", params={"channel": "ops"}).json()["items"]
    mine = [u for u in api if u["speaker_id"] == "sato"]
    assert mine, api
    leak = next(u for u in mine if "漏れ" in u["text"])
    assert leak["speaker_name"] and leak["language"] == "ja" and leak["model"] == "whisper-base"
    start, end = parse_time(leak["start"]) / 1000, parse_time(leak["end"]) / 1000
    assert before < start < end < time.time() and 1.5 < end - start < 8
    assert char_score(SENTENCES[0], leak["text"]).cer < 0.35, leak["text"]
    # the clip plays: the search page's <audio> source is Ogg Opus with the burst's length
    src = html.unescape(re.findall(r'<audio[^>]*src="([^"]+)"', page)[0])
    clip = httpx.get(server.url + src, timeout=10)
    assert clip.status_code == 200 and clip.headers["content-type"] == "audio/ogg"
    path = tmp_path / "clip.ogg"
    path.write_bytes(clip.content)
    with av.open(str(path)) as container:
        frames = sum(f.samples for f in container.decode(audio=0))
    assert frames / 48000 > 1.5
    # the pipeline's text is exactly Whisper's on the burst's own clip
    clip_of_leak = httpx.get(server.url + leak["clip_url"], timeout=10)
    path.write_bytes(clip_of_leak.content)
    assert recognize_file(whisper_factory(), path).text == leak["text"]  # type: ignore[arg-type]
