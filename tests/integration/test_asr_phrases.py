"""Phrase lists: the deployment-wide list over REST and the admin page (admins only; a change
is audited without its words), and what the sidecar gives each engine: Whisper the deployment
list ∪ the channel's, Vosk the channel's list only."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts import build_org, client, signin
from tests.servers import ServerProcess, free_port
from tests.transcribe_helpers import FakeFactory
from voice_server.identity.keys import load_or_create_key
from voice_server.store.database import Database
from voice_server.transcribe import phrases as phrase_lists
from voice_server.transcribe.sidecar import Sidecar

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("phrases")
    build_org(data)
    srv = ServerProcess(data, free_port(), free_port(socket.SOCK_DGRAM), {})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_admins_set_the_deployment_list_over_rest_and_the_page(server: ServerProcess) -> None:
    with client(server) as c:
        token = signin(c, "root")
        h = {"X-CSRF-Token": token}
        r = c.put(
            "/api/v1/asr/phrases", json={"phrases": ["避難所A", " 給水車 ", "避難所A"]}, headers=h
        )
        assert r.status_code == 200 and r.json() == {"phrases": ["避難所A", "給水車"]}
        assert c.get("/api/v1/asr/phrases").json()["phrases"] == ["避難所A", "給水車"]
        too_long = c.put("/api/v1/asr/phrases", json={"phrases": ["x" * 41]}, headers=h)
        assert too_long.status_code == 400
        assert c.put("/api/v1/asr/phrases", json={"phrases": []}).status_code == 403  # no CSRF
        page = c.get("/dashboard/phrases")
        assert page.status_code == 200 and "避難所A\n給水車" in page.text
        form_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert form_csrf is not None
        r = c.post(
            "/dashboard/phrases",
            data={"csrf": form_csrf.group(1), "phrases": "中央公民館\n田中\n\n"},
        )
        assert r.status_code == 303
        assert phrase_lists.load(server.data_dir) == ["中央公民館", "田中"]
        audit = c.get("/api/v1/audit/export?format=json").json()["entries"]
        changes = [e for e in audit if e["action"] == "asr.phrases"]
        assert len(changes) == 2 and "田中" not in str(changes)
    with client(server) as c:
        token = signin(c, "boss")
        assert c.get("/api/v1/asr/phrases").status_code == 403
        r = c.put("/api/v1/asr/phrases", json={"phrases": []}, headers={"X-CSRF-Token": token})
        assert r.status_code == 403
        assert c.get("/dashboard/phrases").status_code == 403


def test_whisper_gets_deployment_and_channel_lists_vosk_the_channel_list_only(
    tmp_path: Path,
) -> None:
    build_org(tmp_path)
    load_or_create_key(tmp_path)
    db = Database(tmp_path / "voice.db")
    with db.transaction() as conn:
        settings = json.dumps({"phrases": ["東門", "避難所A"]}, ensure_ascii=False)
        conn.execute("UPDATE channel SET settings = ? WHERE name = 'ops'", (settings,))
    phrase_lists.save(tmp_path, ["避難所A"])

    class WhisperLike(FakeFactory):
        uses_deployment_phrases = True

    vosk = Sidecar("http://127.0.0.1:1", tmp_path, FakeFactory())
    whisper = Sidecar("http://127.0.0.1:1", tmp_path, WhisperLike())
    assert vosk.phrases_of("ops") == ["東門", "避難所A"]
    assert vosk.phrases_of("hq") is None  # no grammar where a channel sets none
    assert whisper.phrases_of("ops") == ["避難所A", "東門"]
    assert whisper.phrases_of("hq") == ["避難所A"]
    vosk.engine.close()
    whisper.engine.close()
