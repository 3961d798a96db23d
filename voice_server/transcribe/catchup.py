"""Catch-up from the spool: bursts the live link did not deliver (sidecar down, link lost,
queue full, server restarted) are transcribed from their spool files, oldest first, one at a
time so live bursts keep the other workers; committed bursts' files move to their clip path.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from voice_server.calllog.burst import DONE, SPOOL_DIR, BurstMeta, burst_id_of
from voice_server.calllog.jobqueue import Claim
from voice_server.calllog.model import Gap, Utterance
from voice_server.calllog.ogg import OggError, read_ogg_opus
from voice_server.calllog.store import CallLog
from voice_server.store.channels import NAME_RE
from voice_server.transcribe.engine import Engine, Job, _now_ms
from voice_server.transcribe.packets import opus_samples
from voice_server.transcribe.spool import fsync_dir

__all__ = ["CatchUp"]

log = logging.getLogger(__name__)


class CatchUp:
    def __init__(self, data_dir: Path, engine: Engine, calllog: CallLog) -> None:
        self.data_dir = data_dir
        self.spool = data_dir / SPOOL_DIR
        self.engine = engine
        self.calllog = calllog
        self.current: Job | None = None
        self.moved = 0
        self.damaged = 0

    def step(self) -> None:
        """One pass (blocking: run in a thread): move done files, start the oldest pending."""
        try:
            names = sorted(e.name for e in os.scandir(self.spool) if e.name.endswith(DONE))
        except FileNotFoundError:
            return
        ids = [i for i in (burst_id_of(n) for n in names) if i is not None]
        done = self.calllog.done(ids)
        for burst_id in ids:
            if burst_id in done and burst_id not in self.engine.active:
                self.move(burst_id)
        if self.current is not None and not self.current.finished.is_set():
            return
        self.current = None
        for burst_id in ids:
            if burst_id in done or burst_id in self.engine.active:
                continue
            self.current = self.start(burst_id)
            if self.current is not None:
                return

    def start(self, burst_id: str, claim: Claim | None = None) -> Job | None:
        return self.start_from(burst_id, None, claim)

    def start_from(self, burst_id: str, data: bytes | None, claim: Claim | None) -> Job | None:
        """:meth:`start` with the burst's bytes given (read from a ClipStore), or its spool
        file's when ``data`` is None."""
        path = self.spool / f"{burst_id}{DONE}"
        try:
            parsed = read_ogg_opus(data if data is not None else path.read_bytes())
            meta = BurstMeta.from_tags(parsed.tags)
            if not all(NAME_RE.match(c) for c in (meta.channel, *meta.also)):
                raise ValueError("bad channel name in tags")
        except FileNotFoundError:
            return None
        except (OSError, OggError, ValueError) as exc:
            self._damaged(path, burst_id, str(exc))
            return None
        job = self.engine.job(meta, live=False)
        if job is None:
            return None
        job.claim = claim  # a queue job: its commit is fenced on the claim
        self.engine.push_opus(job, [(p, opus_samples(p)) for p in parsed.packets])
        self.engine.end(job)
        return job

    def move(self, burst_id: str) -> None:
        """Move a committed burst's spool file to its clip path (idempotent)."""
        src = self.spool / f"{burst_id}{DONE}"
        utterance = self.calllog.get(burst_id) or self._shared_row(src)
        if utterance is None or not utterance.clip:
            if self.calllog.done([burst_id]):  # a gap (e.g. no_speech): no clip to keep
                with contextlib.suppress(OSError):
                    src.unlink()
            return
        dst = self.data_dir / utterance.clip
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
            fsync_dir(dst.parent)
            self.moved += 1
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("could not move a clip", extra={"burst": burst_id, "error": exc.strerror})

    def _shared_row(self, src: Path) -> Utterance | None:
        """A burst into several channels has rows ``<id>:<channel>``: its first (the tags of its
        spool file say which)."""
        try:
            meta = BurstMeta.from_tags(read_ogg_opus(src.read_bytes()).tags)
        except (OSError, OggError, ValueError):
            return None
        return self.calllog.get(f"{meta.id}:{meta.channel}") if meta.shared else None

    def _damaged(self, path: Path, burst_id: str, why: str) -> None:
        self.damaged += 1
        log.warning("undecodable spool file", extra={"burst": burst_id, "error": why})
        aside = self.spool / "damaged"
        with contextlib.suppress(OSError):
            aside.mkdir(exist_ok=True)
            os.replace(path, aside / path.name)
        start_ms = int(burst_id[:13])
        gap = Gap(burst_id, "?", "?", "?", start_ms, start_ms, "undecodable", why[:200])
        with contextlib.suppress(Exception):
            self.calllog.add_gap(gap, created_ms=_now_ms())
