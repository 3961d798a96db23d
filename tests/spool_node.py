"""A spool writer alone in a process, to be SIGKILLed by a test (tests/unit/
test_transcribe_spool.py): ``python -m tests.spool_node DATA_DIR DATABASE_URL``. It records two
bursts back to back — the first whole (ended: its spool file closed, then its transcription job
queued), the second only begun, under a second of audio (no audio page yet) — prints the second's
id and waits on stdin to be killed."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.transcribe_helpers import opus_tone, rtp
from voice_server.backends.seam import open_call_log, open_database, open_job_queue
from voice_server.transcribe.spool import SpoolWriter
from voice_server.transcribe.tap import BurstTap

SPEAKERS = {"a": ("sato", "佐藤"), "b": ("suzuki", "鈴木")}


def main(data_dir: Path, url: str) -> None:
    db = open_database(url, data_dir)
    tap = BurstTap(SPEAKERS.get)
    writer = SpoolWriter(data_dir, tap, open_call_log(url, data_dir, db), quota_bytes=1 << 30)
    writer.jobs = open_job_queue(db)
    writer.start()
    packets = opus_tone(1.0)
    first = tap.open("a", "ops", [], 0)
    for i, p in enumerate(packets):
        tap.packet(first, rtp(i, p))
    tap.close(first)
    second = tap.open("b", "ops", [(rtp(i, p), i * 20) for i, p in enumerate(packets[:10])], 200)
    print(first.meta.id, second.meta.id, flush=True)
    sys.stdin.read()  # until killed


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
