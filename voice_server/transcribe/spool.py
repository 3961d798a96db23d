"""The spool writer: a thread that writes every talk burst to disk as Ogg/Opus.

"Accepted means on disk": each burst's packets go to ``spool/<id>.ogg.part`` as they arrive (a
page per second of audio, unbuffered writes: a killed server leaves them in the page cache); at
the burst's end the file gets its end-of-stream page, is fsynced, renamed to ``spool/<id>.ogg``
and the directory fsynced, normally within a few ms (the thread is woken by the close).

A burst is on disk from its start: the ``.part`` file and its first two pages (the burst's
metadata: channel, speaker, start) are created by a small *opener* thread as soon as the tap
opens the burst, not when the writer thread reaches the burst's OPEN item, which may wait behind
another burst's fsync, or a backlog of packets.
Whichever thread comes first creates the file (under a lock; once per burst). A node killed
before the burst's first audio page (a second of audio) leaves that file, and ``recover`` turns
it into a ``server_restart`` gap record. The event loop only puts the burst on a queue; what is
left is the opener's scheduling delay (normally well under a millisecond).

Instead of a file, a *gap record* goes to the call log when the spool is over its quota
(``spool_quota``) or the disk refuses (``spool_error``); a burst that lost packets to a full
queue is kept and gets an extra ``spool_backlog`` gap. At start-up, files a killed server left
as ``.part`` are completed (``recover``) so the sidecar transcribes what they hold.

On PostgreSQL each ended burst's clip upload and job queuing run on another thread
(:mod:`voice_server.transcribe.uploads`), retried about every second: a slow or locked
database never holds the spool writer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from voice_server.calllog.burst import DONE, PART, SPOOL_DIR, BurstMeta, burst_id_of, clip_path
from voice_server.calllog.clips import ClipStore
from voice_server.calllog.jobqueue import JobQueue
from voice_server.calllog.model import Gap
from voice_server.calllog.ogg import OggError, OggOpusWriter, read_ogg_opus
from voice_server.calllog.store import CallLog
from voice_server.histogram import LatencyHistogram
from voice_server.media.errors import PacketError
from voice_server.media.rtp import payload_of
from voice_server.transcribe.packets import Sequencer
from voice_server.transcribe.tap import CLOSE, OPEN, PACKET, BurstHandle, BurstTap
from voice_server.transcribe.uploads import Upload, Uploads

__all__ = ["SpoolCounters", "SpoolWriter", "fsync_dir"]

log = logging.getLogger(__name__)
QUOTA_RESCAN_SECONDS = 5.0
LIVE_GRACE_MS = 10_000


UNREADABLE = "its spool file was empty or unreadable: channel and speaker unknown"


def unknown_burst(burst_id: str) -> BurstMeta:
    """What a burst id alone tells (its start, from the id's first 13 digits)."""
    return BurstMeta(burst_id, "?", "?", "?", "", int(burst_id[:13]))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class SpoolCounters:
    files: int = 0
    bytes: int = 0
    bad_packets: int = 0
    gaps: dict[str, int] = field(default_factory=dict)
    recovered: int = 0
    job_queue_errors: int = 0  # failed tries to queue an ended burst's job (retried)
    clip_upload_failures: int = 0  # failed tries to upload an ended burst's clip (retried)
    close_latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    upload_delay: LatencyHistogram = field(default_factory=LatencyHistogram)  # fsync -> upload


class _Open:
    __slots__ = ("file", "handle", "part", "refused", "sequencer", "writer")

    def __init__(self, handle: BurstHandle) -> None:
        self.handle = handle
        self.file: object | None = None
        self.writer: OggOpusWriter | None = None
        self.sequencer = Sequencer()
        self.part: Path | None = None
        self.refused: tuple[str, str] | None = None  # (reason, detail)


class SpoolWriter:
    def __init__(self, data_dir: Path, tap: BurstTap, calllog: CallLog, quota_bytes: int) -> None:
        self.dir = data_dir / SPOOL_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tap = tap
        self.calllog = calllog
        self.quota_bytes = quota_bytes
        self.counters = SpoolCounters()
        self._open: dict[int, _Open] = {}
        self._begin_lock = threading.Lock()  # a burst's file is created once, by either thread
        self._stop = False
        self._thread: threading.Thread | None = None
        self._opener: threading.Thread | None = None
        self._pending_bytes = 0
        self._rescanned = 0.0
        self.jobs: JobQueue | None = None  # on PostgreSQL: queue a job per ended burst
        self.clips: ClipStore | None = None  # on PostgreSQL: upload each ended burst's clip
        self.uploads = Uploads(self._after_fsync)  # both, off this thread, retried

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.recover()  # before the opener: the .part files it sees are a killed node's
        self._opener = threading.Thread(target=self._open_early, name="spool-opener", daemon=True)
        self._opener.start()
        self.resync()
        self.uploads.start()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._opener is not None:  # first: the writer creates whatever it has not
            with contextlib.suppress(queue.Full):
                self.tap.opening.put(None, timeout=timeout)
            self._opener.join(timeout)
            self._opener = None
        self._stop = True
        self.tap.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.uploads.stop(timeout)

    def _open_early(self) -> None:
        """The opener thread: each burst's file with its metadata as soon as the burst opens."""
        while True:
            handle = self.tap.opening.get()
            if handle is None:
                return
            try:
                self._begin(handle)
            except Exception:  # the writer creates it (or records the gap) in queue order
                log.exception("spool opener failed", extra={"burst": handle.meta.id})

    def _run(self) -> None:
        while True:
            self.tap.wake.wait(0.05)
            self.tap.wake.clear()
            try:
                self.drain()
            except Exception:  # keep the writer alive; the burst at fault is logged
                log.exception("spool writer failed")
            if self._stop and not self.tap.queue:
                for entry in list(self._open.values()):
                    self._close(entry)
                return

    # ------------------------------------------------------------------ work
    def pending_bytes(self) -> int:
        now = time.monotonic()
        if now - self._rescanned > QUOTA_RESCAN_SECONDS:
            self._rescanned = now
            total = 0
            with contextlib.suppress(OSError):
                for entry in os.scandir(self.dir):
                    if entry.name.endswith((DONE, PART)):
                        with contextlib.suppress(OSError):
                            total += entry.stat().st_size
            self._pending_bytes = total
        return self._pending_bytes

    def drain(self) -> None:
        queue = self.tap.queue
        while queue:
            kind, handle, data = queue.popleft()
            if kind == PACKET:
                entry = self._open.get(handle.no)
                if entry is not None and entry.writer is not None:
                    self._packet(entry, data)  # type: ignore[arg-type]
            elif kind == OPEN:
                entry = self._begin(handle)
                for packet in data:  # type: ignore[attr-defined]
                    if entry is not None and entry.writer is not None:
                        self._packet(entry, packet)
            elif kind == CLOSE:
                entry = self._open.get(handle.no)
                if entry is not None:
                    self._close(entry)

    def _begin(self, handle: BurstHandle) -> _Open | None:
        """The burst's entry, its file created (or refused) once: by the opener thread early,
        else by the writer at the OPEN item; None when already begun and closed (a late
        opener)."""
        with self._begin_lock:
            if handle.spooled:
                return self._open.get(handle.no)
            entry = self._create(handle)  # an exception: the writer tries again at the OPEN
            handle.spooled = True
            self._open[handle.no] = entry
            return entry

    def _create(self, handle: BurstHandle) -> _Open:
        entry = _Open(handle)
        if self.pending_bytes() >= self.quota_bytes:
            entry.refused = ("spool_quota", f"spool holds {self._pending_bytes} bytes")
            return entry
        part = self.dir / f"{handle.meta.id}{PART}"
        try:
            f = open(part, "xb", buffering=0)
        except OSError as exc:
            entry.refused = ("spool_error", f"cannot create spool file: {exc.strerror}")
            return entry
        entry.file, entry.part = f, part
        entry.writer = OggOpusWriter(
            f.write, serial=int(handle.meta.id[13:], 16), tags=handle.meta.tags()
        )
        return entry

    def _packet(self, entry: _Open, plain: bytes) -> None:
        try:
            seq, ts, payload = payload_of(plain)
        except PacketError:
            self.counters.bad_packets += 1
            return
        writer = entry.writer
        assert writer is not None
        try:
            for packet, samples in entry.sequencer.push(seq, ts, payload):
                writer.add(packet, samples)
        except OSError as exc:
            self._fail(entry, f"write failed: {exc.strerror}")

    def _fail(self, entry: _Open, detail: str) -> None:
        entry.refused = ("spool_error", detail)
        entry.writer = None
        if entry.file is not None:
            with contextlib.suppress(OSError):
                entry.file.close()  # type: ignore[attr-defined]
            entry.file = None
        if entry.part is not None:
            with contextlib.suppress(OSError):
                entry.part.unlink()

    def _close(self, entry: _Open) -> None:
        handle = entry.handle
        self._open.pop(handle.no, None)
        end_ms = handle.ended_ms or _now_ms()
        if entry.writer is not None and entry.part is not None:
            try:
                entry.writer.close()
                f = entry.file
                os.fsync(f.fileno())  # type: ignore[attr-defined]
                f.close()  # type: ignore[attr-defined]
                os.replace(entry.part, self.dir / f"{handle.meta.id}{DONE}")
                fsync_dir(self.dir)
                self.counters.files += 1
                self.counters.bytes += entry.writer.bytes
                with self._begin_lock:  # the opener reads it for the quota
                    self._pending_bytes += entry.writer.bytes
                self.counters.close_latency.observe_us(max(0, _now_ms() - end_ms) * 1000)
            except OSError as exc:
                self._fail(entry, f"close failed: {exc.strerror}")
            else:
                if self.jobs is not None or self.clips is not None:
                    self.uploads.submit(handle.meta)
        if entry.refused is not None:
            self._gap(handle.meta, handle.meta.id, end_ms, *entry.refused)
        elif handle.overflow:
            detail = f"{handle.overflow} packets dropped: spool queue full"
            self._gap(handle.meta, f"{handle.meta.id}-backlog", end_ms, "spool_backlog", detail)

    def resync(self) -> None:
        """At start-up on PostgreSQL: every ended burst still in the spool (this node died
        before its upload or its job, or before a worker took it) is uploaded and queued again
        (both idempotent), by the uploads thread."""
        if self.jobs is None and self.clips is None:
            return
        for path in sorted(self.dir.glob(f"*{DONE}")):
            try:
                meta = BurstMeta.from_tags(read_ogg_opus(path.read_bytes()).tags)
            except (OSError, OggError, ValueError):
                continue  # the sidecar's catch-up sets damaged files aside
            self.uploads.submit(meta)

    def _after_fsync(self, item: Upload) -> bool:
        """The uploads thread: the clip into the shared store, then (only then: a worker on
        another node can read it) its transcription job. False: a try failed, again soon."""
        meta = item.meta
        if not item.uploaded and self.clips is not None:
            data = self._clip_bytes(meta)
            if data is None:  # committed and moved away, or deleted: nothing left to upload
                log.warning("an ended burst's file is gone: not uploaded", extra={"burst": meta.id})
                return True
            try:
                self.clips.put(clip_path(meta), data)
            except Exception as exc:
                self.counters.clip_upload_failures += 1
                if item.tries == 1:  # logged once per burst, retried every second
                    log.warning(
                        "could not upload a clip (retrying): %s",
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        extra={"burst": meta.id},
                    )
                return False
            self.counters.upload_delay.observe_us(int((time.monotonic() - item.fsynced) * 1e6))
        item.uploaded = True
        if not item.queued and self.jobs is not None and not self._queue_job(meta.id):
            return False
        item.queued = True
        return True

    def _clip_bytes(self, meta: BurstMeta) -> bytes | None:
        """The spool file, or the clip file a sidecar here moved it to after committing."""
        for path in (self.dir / f"{meta.id}{DONE}", self.dir.parent / clip_path(meta)):
            try:
                return path.read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                continue
        return None

    def _queue_job(self, burst_id: str) -> bool:
        """The transcription job of an ended burst (False: not queued this time)."""
        assert self.jobs is not None
        try:
            live = self.tap.live is not None and self.tap.live.connected
            # a burst streamed live is committed by its sidecar within a second or so: the job
            # waits LIVE_GRACE_MS so that no other worker transcribes it again from the spool
            self.jobs.enqueue([(burst_id, _now_ms() + (LIVE_GRACE_MS if live else 0))])
        except Exception:
            self.counters.job_queue_errors += 1
            log.warning("could not queue a transcription job", extra={"burst": burst_id})
            return False
        return True

    def _gap(self, meta: BurstMeta, gap_id: str, end_ms: int, reason: str, detail: str) -> None:
        self.counters.gaps[reason] = self.counters.gaps.get(reason, 0) + 1
        log.warning(
            "talk burst not spooled: gap recorded",
            extra={"burst": meta.id, "channel": meta.channel, "reason": reason},
        )
        gap = Gap(
            gap_id,
            meta.channel,
            meta.speaker_id,
            meta.speaker_name,
            meta.start_ms,
            max(end_ms, meta.start_ms),
            reason,
            detail,
        )
        try:
            self.calllog.add_gap(gap, created_ms=_now_ms())
        except Exception:
            log.exception("could not record a gap", extra={"burst": meta.id})

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Complete the ``.part`` files a killed server left (synchronously, at start-up)."""
        for path in sorted(self.dir.glob(f"*{PART}")):
            burst_id = burst_id_of(path.name)
            try:
                data = path.read_bytes()
                parsed = read_ogg_opus(data)
                meta = BurstMeta.from_tags(parsed.tags)
            except (OSError, OggError, ValueError):
                log.warning("unreadable spool file moved aside", extra={"file": path.name})
                aside = self.dir / "damaged"
                aside.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):
                    os.replace(path, aside / path.name)
                if burst_id is not None:  # a burst began (killed before its header was out)
                    self._gap(unknown_burst(burst_id), burst_id, 0, "server_restart", UNREADABLE)
                continue
            if parsed.packets:
                os.replace(path, self.dir / f"{meta.id}{DONE}")
                self.counters.recovered += 1
                end_ms = meta.start_ms + parsed.granule * 1000 // 48000
                detail = "cut by a restart of the node that recorded it: audio up to then kept"
                self._gap(meta, f"{meta.id}-restart", end_ms, "node_restart", detail)
            else:
                self._gap(meta, meta.id, meta.start_ms, "server_restart", "no audio was written")
                with contextlib.suppress(OSError):
                    path.unlink()
        with contextlib.suppress(OSError):
            fsync_dir(self.dir)
