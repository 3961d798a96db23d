"""Bursts in the spool (``spool/<id>.ogg``: accepted, not yet committed) of one channel, read
from their Ogg tags, so a member can replay a burst from its end, before the transcriber catches
up. At most :data:`MAX_FILES` of the newest files in the window are looked at per call, and of
each only its head (the tags); its end is the file's modification time (the spool writer closes
and renames it at the burst's end)."""

from __future__ import annotations

import os
from pathlib import Path

from voice_server.calllog.burst import DONE, SPOOL_DIR, BurstMeta
from voice_server.calllog.model import BURST_ID_RE
from voice_server.calllog.ogg import OggError, read_ogg_opus
from voice_server.replay.listing import PendingBurst

__all__ = ["MAX_FILES", "pending_bursts"]

MAX_FILES = 200
HEAD_BYTES = 16 * 1024  # OpusHead and OpusTags are the first two pages


def pending_bursts(data_dir: Path, channel: str, since_ms: int) -> list[PendingBurst]:
    folder = data_dir / SPOOL_DIR
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    ids = sorted(
        (n[: -len(DONE)] for n in names if n.endswith(DONE) and BURST_ID_RE.match(n[: -len(DONE)])),
        reverse=True,
    )
    out: list[PendingBurst] = []
    for burst_id in ids[:MAX_FILES]:
        if int(burst_id[:13]) < since_ms:
            break
        burst = _read(folder / f"{burst_id}{DONE}", channel)
        if burst is not None:
            out.append(burst)
    return out


def _read(path: Path, channel: str) -> PendingBurst | None:
    try:
        with path.open("rb") as f:
            data = f.read(HEAD_BYTES)
            mtime_ms = os.fstat(f.fileno()).st_mtime_ns // 1_000_000
        meta = BurstMeta.from_tags(read_ogg_opus(data).tags)
    except (OSError, OggError, ValueError):
        return None  # moved to its clip meanwhile (committed), or not a burst
    if meta.channel != channel:
        return None
    end_ms = max(meta.start_ms, mtime_ms)
    return PendingBurst(
        meta.id, meta.channel, meta.speaker_id, meta.speaker_name, meta.start_ms, end_ms
    )
