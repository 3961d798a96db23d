"""Tap and spool writer: every burst (pre-roll and slot_busy talkers included) is written as
Ogg/Opus, fsynced and renamed at its end; quota, backlog and crashes give gap records or
recovered files, never silence: a burst is on disk from its start even while the writer thread
is stalled (SIGKILL then gives a gap record)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from tests.backends import queuing_blocked
from tests.transcribe_helpers import opus_tone, rtp
from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import new_burst_id
from voice_server.calllog.ogg import read_ogg_opus
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.router import Router
from voice_server.store.database import Database
from voice_server.talk.detector import TalkRules
from voice_server.transcribe import tap as tap_module
from voice_server.transcribe.spool import SpoolWriter
from voice_server.transcribe.tap import BurstTap


def speakers(session_id: str) -> tuple[str, str] | None:
    return {"a": ("sato", "佐藤"), "b": ("suzuki", "鈴木")}.get(session_id)


def setup(tmp_path: Path, **kw: int) -> tuple[BurstTap, SpoolWriter, SqliteCallLog]:
    log = SqliteCallLog(Database(tmp_path / "voice.db"))
    tap = BurstTap(speakers, queue_limit=kw.get("queue_limit", 50_000))
    writer = SpoolWriter(tmp_path, tap, log, quota_bytes=kw.get("quota", 1 << 30))
    return tap, writer, log


def wait_until(check: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def wait_path(path: Path, what: str, timeout: float = 30.0) -> None:
    wait_until(path.exists, what, timeout)


def test_a_burst_becomes_a_closed_ogg_opus_file(tmp_path: Path) -> None:
    """Written while talking, closed when the burst ends (how fast is the benchmark's
    ``close_latency``, not asserted here: the machine may be busy)."""
    tap, writer, _ = setup(tmp_path)
    writer.start()
    try:
        packets = opus_tone(1.0)
        pre = [(rtp(i, p), i * 20) for i, p in enumerate(packets[:5])]
        h = tap.open("a", "ops", pre, 100)
        for i, p in enumerate(packets[5:], 5):
            tap.packet(h, rtp(i, p))
        wait_path(tmp_path / "spool" / f"{h.meta.id}.ogg.part", "the file written while talking")
        tap.close(h)
        final = tmp_path / "spool" / f"{h.meta.id}.ogg"
        wait_path(final, "the closed file")
    finally:
        writer.stop()
    parsed = read_ogg_opus(final.read_bytes())
    assert parsed.complete and parsed.packets == tuple(packets)  # pre-roll included
    meta = BurstMeta.from_tags(parsed.tags)
    assert (meta.speaker_id, meta.speaker_name, meta.channel) == ("sato", "佐藤", "ops")
    with av.open(str(final)) as c:
        assert sum(f.samples for f in c.decode(audio=0)) == 48000
    assert writer.counters.close_latency.count == 1


def test_over_quota_a_gap_is_recorded_instead(tmp_path: Path) -> None:
    tap, writer, log = setup(tmp_path, quota=0)
    writer.start()
    h = tap.open("b", "ops", [(rtp(0, opus_tone(0.1)[0]), 0)], 0)
    tap.close(h)
    writer.stop()
    (gap,) = log.gaps(channels=None, since_ms=None, until_ms=None)
    assert gap.id == h.meta.id and gap.reason == "spool_quota" and gap.speaker_name == "鈴木"
    assert log.done([h.meta.id]) == {h.meta.id}
    assert not list((tmp_path / "spool").glob("*.ogg"))


def test_a_full_queue_drops_counted_packets_and_records_a_backlog_gap(tmp_path: Path) -> None:
    tap, writer, log = setup(tmp_path, queue_limit=10)
    packets = opus_tone(0.5)
    h = tap.open("a", "ops", [], 0)
    for i, p in enumerate(packets):  # the writer is not running: the queue fills
        tap.packet(h, rtp(i, p))
    tap.close(h)
    assert tap.counters.queue_drops == len(packets) - 9
    writer.start()
    writer.stop()
    assert (tmp_path / "spool" / f"{h.meta.id}.ogg").exists()  # what was kept is spooled
    (gap,) = log.gaps(channels=None, since_ms=None, until_ms=None)
    assert gap.reason == "spool_backlog" and gap.id.startswith(h.meta.id)
    assert log.done([h.meta.id]) == set()  # the burst itself is still to transcribe


def test_partial_files_left_by_a_crash_are_completed_at_start(tmp_path: Path) -> None:
    tap, writer, _ = setup(tmp_path)
    packets = opus_tone(2.0)
    h = tap.open("a", "ops", [], 0)
    for i, p in enumerate(packets):
        tap.packet(h, rtp(i, p))
    writer.drain()  # written, never closed: as after SIGKILL
    part = tmp_path / "spool" / f"{h.meta.id}.ogg.part"
    assert part.exists()
    _, again, _ = setup(tmp_path)
    again.recover()
    done = tmp_path / "spool" / f"{h.meta.id}.ogg"
    assert done.exists() and not part.exists()
    assert len(read_ogg_opus(done.read_bytes()).packets) >= 50  # the full pages survived
    # the restart says so in a gap record of its own: the burst itself is still to transcribe
    (gap,) = again.calllog.gaps(channels=None, since_ms=None, until_ms=None)
    assert gap.reason == "node_restart" and gap.id == f"{h.meta.id}-restart"
    assert gap.end_ms > gap.start_ms
    assert again.calllog.done([h.meta.id]) == set()


def test_an_empty_file_left_by_a_crash_still_gives_a_gap(tmp_path: Path) -> None:
    """Killed between creating a burst's file and writing its header: the file's name is all
    that says a burst began; the restart records a gap from it (channel and speaker unknown)."""
    _, writer, log = setup(tmp_path)
    burst_id = new_burst_id(1_780_000_000_000)
    (tmp_path / "spool" / f"{burst_id}.ogg.part").touch()
    (tmp_path / "spool" / "junk.ogg.part").write_bytes(b"not ogg")
    writer.recover()
    (gap,) = log.gaps(channels=None, since_ms=None, until_ms=None)
    assert (gap.id, gap.reason, gap.channel, gap.start_ms) == (
        burst_id,
        "server_restart",
        "?",
        1_780_000_000_000,
    )
    damaged = sorted(p.name for p in (tmp_path / "spool" / "damaged").iterdir())
    assert damaged == sorted([f"{burst_id}.ogg.part", "junk.ogg.part"])  # set aside, not lost


class FakeTransport:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.level_ext_id = 1
        self.media_ready = False
        self.remote = None
        self.tx = None


class Events:
    def __init__(self) -> None:
        self.busy: list[str] = []

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        pass

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        pass

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self.busy.append(session_id)


def test_the_router_taps_whole_bursts_including_a_talker_who_found_every_slot_busy(
    tmp_path: Path,
) -> None:
    tap, writer, _ = setup(tmp_path)
    events = Events()
    router = Router(
        "ops",
        slot_ssrcs=(11,),
        payload_type=111,
        rules=TalkRules(),
        preroll_packets=5,
        events=events,
        sendto=lambda data, addr: None,
        counters=MediaCounters(),
        histogram=LatencyHistogram(),
        tap=tap,
    )
    a = router.add(FakeTransport("a"))  # type: ignore[arg-type]
    b = router.add(FakeTransport("b"))  # type: ignore[arg-type]
    packets = opus_tone(1.0)
    for i, p in enumerate(packets):
        t_ns = (1_000 + i * 20) * 1_000_000
        router.on_rtp(a, rtp(i, p), t_ns)
        router.on_rtp(b, rtp(i, p, ssrc=2), t_ns + 1000)
    assert events.busy == ["b"]
    for i in range(40):  # silence: both bursts end after the 600 ms hangover
        t_ns = (2_000 + i * 20) * 1_000_000
        router.on_rtp(a, rtp(50 + i, packets[0], level=127), t_ns)
        router.on_rtp(b, rtp(50 + i, packets[0], level=127, ssrc=2), t_ns)
    writer.start()
    writer.stop()
    files = sorted((tmp_path / "spool").glob("*.ogg"))
    assert len(files) == 2
    for f in files:
        parsed = read_ogg_opus(f.read_bytes())
        # every voiced packet from the first (pre-roll) on, plus the hangover's quiet ones
        assert parsed.packets[: len(packets)] == tuple(packets)
    speakers_seen = {
        BurstMeta.from_tags(read_ogg_opus(f.read_bytes()).tags).speaker_id for f in files
    }
    assert speakers_seen == {"sato", "suzuki"}


def test_on_postgres_an_ended_burst_is_uploaded_and_queued_and_again_after_a_restart(
    tmp_path: Path, pg_url: str
) -> None:
    """The spool writer puts each ended burst's clip into the shared store and queues its job;
    at start-up it does both again for what is left in the spool (idempotent)."""
    from voice_server.backends.seam import (
        open_call_log,
        open_clip_store,
        open_database,
        open_job_queue,
    )
    from voice_server.calllog.burst import clip_path

    db = open_database(pg_url, tmp_path)
    log = open_call_log(pg_url, tmp_path, db)
    tap = BurstTap(speakers, queue_limit=50_000)
    writer = SpoolWriter(tmp_path, tap, log, quota_bytes=1 << 30)
    writer.jobs, writer.clips = open_job_queue(db), open_clip_store(db, tmp_path)
    packets = opus_tone(0.5)
    h = tap.open("a", "ops", [], 0)
    for i, p in enumerate(packets):
        tap.packet(h, rtp(i, p))
    tap.close(h)
    writer.drain()
    assert writer.uploads.step() == 0  # the uploads thread's work, here
    spooled = (tmp_path / "spool" / f"{h.meta.id}.ogg").read_bytes()
    assert writer.clips.of_burst(h.meta.id) == spooled
    assert writer.counters.upload_delay.count == 1
    assert writer.jobs.counts().queued == 1
    with db.pg.connection() as conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM clip")
        conn.execute("DELETE FROM transcription_job")
    writer.start()  # as after a restart
    writer.stop()
    assert writer.clips.get(clip_path(h.meta), h.meta.id) == spooled
    assert writer.clips.of_burst(h.meta.id) == spooled and writer.jobs.counts().queued == 1
    db.close()


def test_a_burst_begun_while_the_writer_is_stalled_is_on_disk_and_survives_sigkill(
    tmp_path: Path, pg_url: str
) -> None:
    """A slow database (the first burst's job queuing waits on a table lock this test holds;
    once the spool writer's own wait, now its uploads thread's) does not keep the next burst
    off the disk: its file and
    metadata are there at once, so when the node is SIGKILLed then, the restart records a
    ``server_restart`` gap for a burst that had not one audio page yet."""
    import signal
    import subprocess
    import sys

    from voice_server.backends.seam import open_call_log, open_database
    from voice_server.store.pg import PgDatabase

    open_database(pg_url, tmp_path).close()  # migrated before the lock
    holder = PgDatabase(pg_url)
    with holder.connection() as lock_conn:
        lock_conn.execute("BEGIN")
        lock_conn.execute("LOCK TABLE transcription_job IN ACCESS EXCLUSIVE MODE")
        node = subprocess.Popen(
            [sys.executable, "-m", "tests.spool_node", str(tmp_path), pg_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert node.stdout is not None
            first, second = node.stdout.readline().decode().split()
            # the writer thread stuck in the first burst's end (queued before the second's OPEN)
            wait_until(lambda: queuing_blocked(lock_conn), "the writer to block on the lock")
            # ... so the second burst's file, its header written, can only be the opener's
            part = tmp_path / "spool" / f"{second}.ogg.part"
            wait_until(lambda: part.exists() and part.stat().st_size > 0, "the second's file")
            node.send_signal(signal.SIGKILL)
            node.wait(30)
        finally:
            if node.poll() is None:
                node.kill()
                node.wait()
            lock_conn.execute("ROLLBACK")
    holder.close()
    assert (tmp_path / "spool" / f"{first}.ogg").is_file()  # ended and fsynced before the kill
    db = open_database(pg_url, tmp_path)
    log = open_call_log(pg_url, tmp_path, db)
    restarted = SpoolWriter(tmp_path, BurstTap(speakers), log, quota_bytes=1 << 30)
    restarted.recover()
    (gap,) = log.gaps(channels=None, since_ms=None, until_ms=None)
    assert (gap.id, gap.reason, gap.channel) == (second, "server_restart", "ops")
    assert (gap.speaker_id, gap.speaker_name) == ("suzuki", "鈴木")
    assert not list((tmp_path / "spool").glob("*.part"))
    db.close()


def test_a_full_opener_queue_is_counted_and_the_writer_still_creates_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opener's queue is bounded: a burst that finds it full is counted, and the writer
    thread creates its file when it reaches the burst's OPEN item, as without an opener."""
    monkeypatch.setattr(tap_module, "OPENING_LIMIT", 1)
    tap, writer, _ = setup(tmp_path)
    pre = [(rtp(i, p), i * 20) for i, p in enumerate(opus_tone(0.2))]
    first = tap.open("a", "ops", pre, 0)  # nobody takes it yet: the queue is full
    second = tap.open("b", "ops", pre, 0)
    assert tap.counters.opening_drops == 1
    writer.start()
    try:
        for h in (first, second):
            tap.close(h)
            wait_path(tmp_path / "spool" / f"{h.meta.id}.ogg", "the closed file")
    finally:
        writer.stop()
