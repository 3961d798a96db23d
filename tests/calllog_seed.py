"""Synthetic call-log data for tests (the issue allows seeding the store directly): utterances
written with the real store, each with a real, playable Ogg/Opus clip where the transcriber
would have put it (``clips/<channel>/<yyyy-mm-dd>/<id>.ogg``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from voice_server.calllog.burst import BurstMeta, clip_path
from voice_server.calllog.model import Utterance, Word, new_burst_id
from voice_server.calllog.ogg import OggOpusWriter
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

SILENCE = b"\xf8\xff\xfe"  # one 20 ms Opus frame (CELT, mono) of silence
FRAME_SAMPLES = 960


def write_clip(path: Path, seconds: float = 1.0, tags: dict[str, str] | None = None) -> None:
    """An Ogg/Opus file of ``seconds`` of silence with the burst's ``VOICE_*`` tags (as the spool
    writer makes them: speaker name and channel are in the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer = OggOpusWriter(fh.write, serial=1234, tags=tags or {"ENCODER": "tests"})
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
    burst_id: str | None = None,
) -> Utterance:
    start = int(burst_id[:13]) if burst_id else start_ms or int(time.time() * 1000)
    burst = burst_id or new_burst_id(start)
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


def seed(data_dir: Path, utterances: list[Utterance], log: Any = None) -> list[Utterance]:
    """Store ``utterances`` (in ``log``, default the data directory's SQLite) and write their
    clips; returns them."""
    if log is not None:
        log.add_many(utterances, committed_ms=int(time.time() * 1000))
    else:
        db = Database(data_dir / "voice.db")
        SqliteCallLog(db).add_many(utterances, committed_ms=int(time.time() * 1000))
        db.close()
    for u in utterances:
        if u.clip:
            write_clip(data_dir / u.clip, tags=meta_of(u).tags())
    return utterances


def meta_of(u: Utterance) -> BurstMeta:
    return BurstMeta(u.id, u.channel, u.speaker_id, u.speaker_name, "s", u.start_ms)


def spool(data_dir: Path, u: Utterance) -> Path:
    """``u``'s burst as a closed spool file (accepted, not yet transcribed or moved)."""
    path = data_dir / "spool" / f"{u.id}.ogg"
    write_clip(path, 0.2, tags=meta_of(u).tags())
    return path


def files_with(root: Path, text: str) -> list[str]:
    """The files below ``root`` whose bytes contain ``text`` (UTF-8), relative paths, sorted."""
    data = text.encode()
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and data in p.read_bytes()
    )
