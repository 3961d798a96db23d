"""Synthetic call-log data for tests (the issue allows seeding the store directly): utterances
written with the real store, each with a real, playable Ogg/Opus clip where the transcriber
would have put it (``clips/<channel>/<yyyy-mm-dd>/<id>.ogg``)."""

from __future__ import annotations

import time
from pathlib import Path

from voice_server.calllog.model import Utterance, Word, new_burst_id
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database
from voice_server.transcribe.burst import BurstMeta, clip_path
from voice_server.transcribe.ogg import OggOpusWriter

SILENCE = b"\xf8\xff\xfe"  # one 20 ms Opus frame (CELT, mono) of silence
FRAME_SAMPLES = 960


def write_clip(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer = OggOpusWriter(fh.write, serial=1234, tags={"ENCODER": "tests"})
        for _ in range(int(seconds * 50)):
            writer.add(SILENCE, FRAME_SAMPLES)
        writer.close()


def utterance(
    text: str,
    *,
    channel: str = "ops",
    speaker: str = "sato",
    name: str | None = None,
    start_ms: int | None = None,
    language: str = "ja",
    clip: bool = True,
) -> Utterance:
    start = start_ms if start_ms is not None else int(time.time() * 1000)
    burst = new_burst_id(start)
    meta = BurstMeta(burst, channel, speaker, name or speaker.title(), "s", start)
    return Utterance(
        id=burst,
        channel=channel,
        speaker_id=speaker,
        speaker_name=name or speaker.title(),
        start_ms=start,
        end_ms=start + 1000,
        text=text,
        words=(Word(text[:8], 0.0, 0.8, 0.9),) if text else (),
        model="test",
        language=language,
        clip=clip_path(meta) if clip else None,
    )


def seed(data_dir: Path, utterances: list[Utterance]) -> list[Utterance]:
    """Store ``utterances`` and write their clips; returns them."""
    db = Database(data_dir / "voice.db")
    SqliteCallLog(db).add_many(utterances, committed_ms=int(time.time() * 1000))
    db.close()
    for u in utterances:
        if u.clip:
            write_clip(data_dir / u.clip)
    return utterances
