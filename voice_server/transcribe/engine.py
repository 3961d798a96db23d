"""The transcriber's engine: one job per talk burst, run on a thread pool sized to the cores.

A job takes packets (live: RTP packets from the link, ordered by a
:class:`~voice_server.transcribe.packets.Sequencer`; catch-up: the Opus packets of a spool file),
decodes them once (:class:`~voice_server.transcribe.decoder.OpusDecoder`), feeds a recognizer
borrowed from the factory's pool in fixed chunks, reports partial text about twice a second of
audio, and at the end commits the utterance to the call log (idempotent per burst id; with a job
queue, fenced on a worker's claim or, live, through :meth:`JobQueue.commit_live`, which marks the
burst's job done in the same transaction) and only then reports it done; the recognizer goes
back to the pool when the job commits, is aborted or fails (always from the worker that used it).
A job runs on at most one worker at a time; different bursts run in parallel.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from voice_server.calllog.burst import BurstMeta, clip_path, rows_of
from voice_server.calllog.jobqueue import ALREADY_DONE, COMMITTED, FENCED_OUT, Claim, JobQueue
from voice_server.calllog.model import Gap, Utterance
from voice_server.calllog.store import CallLog
from voice_server.media.errors import PacketError
from voice_server.media.rtp import payload_of
from voice_server.transcribe.decoder import Chunker, OpusDecoder
from voice_server.transcribe.packets import Sequencer
from voice_server.transcribe.recognizer import Recognizer, RecognizerFactory

__all__ = ["Engine", "EngineCounters", "Job"]

log = logging.getLogger(__name__)
PARTIAL_EVERY_SAMPLES = 24000  # 0.5 s at 48 kHz

OnPartial = Callable[[BurstMeta, str], None]
OnCommitted = Callable[[Utterance], None]
PhrasesOf = Callable[[str], list[str] | None]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class EngineCounters:
    live_jobs: int = 0
    spool_jobs: int = 0
    committed: int = 0
    already_done: int = 0
    aborted: int = 0
    failed: int = 0
    suppressed: int = 0  # bursts recorded as gaps because the engine suppressed its result
    fenced_out: int = 0  # queue jobs whose lease was lost before the commit: nothing written
    audio_seconds: float = 0.0


class Job:
    def __init__(self, meta: BurstMeta, *, live: bool) -> None:
        self.meta = meta
        self.live = live
        self.inbox: deque[tuple[bytes, int] | bytes] = deque()  # (opus, samples) or RTP
        self.sequencer = Sequencer()
        self.samples = 0
        self.ending = False
        self.aborted = False
        self.ended_ms: int | None = None
        self.finished = threading.Event()
        self.committed: Utterance | None = None
        self.claim: Claim | None = None  # a queue job's: the commit is fenced on it
        self.outcome: str | None = None  # the queue's answer to the commit
        self._since_partial = 0
        self._running = False
        self._lock = threading.Lock()
        self._decoder: OpusDecoder | None = None
        self._chunker: Chunker | None = None
        self._rec: Recognizer | None = None


class Engine:
    def __init__(
        self,
        factory: RecognizerFactory,
        calllog: CallLog,
        *,
        workers: int,
        phrases_of: PhrasesOf = lambda channel: None,
        on_partial: OnPartial | None = None,
        on_committed: OnCommitted | None = None,
        queue: JobQueue | None = None,
    ) -> None:
        self.factory = factory
        self.queue = queue
        self.calllog = calllog
        self.pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="asr")
        self.phrases_of = phrases_of
        self.on_partial = on_partial
        self.on_committed = on_committed
        self.counters = EngineCounters()
        self.active: dict[str, Job] = {}  # burst id -> job not yet finished
        self._lock = threading.Lock()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------ jobs
    def job(self, meta: BurstMeta, *, live: bool) -> Job | None:
        """A new job for a burst, or None when one is already running for it."""
        with self._lock:
            if meta.id in self.active:
                return None
            job = Job(meta, live=live)
            self.active[meta.id] = job
        if live:
            self.counters.live_jobs += 1
        else:
            self.counters.spool_jobs += 1
        return job

    def push_rtp(self, job: Job, packet: bytes) -> None:
        job.inbox.append(packet)
        self._schedule(job)

    def push_opus(self, job: Job, packets: list[tuple[bytes, int]]) -> None:
        job.inbox.extend(packets)
        self._schedule(job)

    def end(self, job: Job, ended_ms: int | None = None) -> None:
        job.ended_ms = ended_ms
        job.ending = True
        self._schedule(job)

    def abort(self, job: Job) -> None:
        """Give the burst up here (it will be transcribed from the spool)."""
        job.aborted = True
        self.counters.aborted += 1
        self._finish(job)
        self._schedule(job)  # a worker gives its recognizer back

    def _schedule(self, job: Job) -> None:
        with job._lock:
            if job._running or (job.aborted and job._rec is None):
                return
            job._running = True
        self.pool.submit(self._run, job)

    def _finish(self, job: Job) -> None:
        with self._lock:
            if self.active.get(job.meta.id) is job:
                del self.active[job.meta.id]
        job.finished.set()

    # ------------------------------------------------------------------ worker
    def _run(self, job: Job) -> None:
        rec: Recognizer | None = None
        try:
            while True:
                self._step(job)
                with job._lock:
                    done = job.finished.is_set() or job.aborted
                    if done or not (job.inbox or job.ending):
                        if done:
                            rec, job._rec = job._rec, None
                        job._running = False
                        break
        except Exception:
            self.counters.failed += 1
            log.exception("transcription job failed", extra={"burst": job.meta.id})
            with job._lock:
                rec, job._rec = job._rec, None
                job._running = False
            self._finish(job)
        if rec is not None:  # back to the pool, outside the job's lock
            try:
                rec.close()
            except Exception:
                log.exception("could not release a recognizer", extra={"burst": job.meta.id})

    def _step(self, job: Job) -> None:
        if job.aborted or job.finished.is_set():
            return
        if job._rec is None:
            job._decoder = OpusDecoder(self.factory.sample_rate)
            job._chunker = Chunker(self.factory.sample_rate)
            job._rec = self.factory.create(self.phrases_of(job.meta.channel))
        decoder, chunker, rec = job._decoder, job._chunker, job._rec
        assert decoder is not None and chunker is not None
        inbox = job.inbox
        while inbox and not job.aborted:
            item = inbox.popleft()
            if isinstance(item, bytes):
                pairs = self._from_rtp(job, item)
            else:
                pairs = [item]
            for packet, samples in pairs:
                job.samples += samples
                job._since_partial += samples
                for chunk in chunker.push(decoder.decode(packet)):
                    rec.accept(chunk)
            if job._since_partial >= PARTIAL_EVERY_SAMPLES and self.on_partial is not None:
                job._since_partial = 0
                text = rec.partial()
                if text:
                    self.on_partial(job.meta, text)
        if job.ending and not inbox and not job.aborted:
            for chunk in chunker.push(decoder.flush()):
                rec.accept(chunk)
            rest = chunker.rest()
            if rest:
                rec.accept(rest)
            self._commit(job, rec.final())

    @staticmethod
    def _from_rtp(job: Job, plain: bytes) -> list[tuple[bytes, int]]:
        try:
            seq, ts, payload = payload_of(plain)
        except PacketError:
            return []
        return job.sequencer.push(seq, ts, payload)

    def _write(self, job: Job, rows: list[Utterance], gap: Gap | None) -> str:
        """The burst's rows or gap: fenced on the job's claim (a queue worker's); through the
        queue's live commit when there is a queue (the job done in the same transaction: no
        worker transcribes the burst again); else with the call log's done-check alone."""
        now = _now_ms()
        queue, end_ms = self.queue, job.ended_ms
        if queue is not None and job.claim is not None:
            return queue.commit(job.claim, rows, gap, burst_end_ms=end_ms, committed_ms=now)
        if queue is not None:
            return queue.commit_live(job.meta.id, rows, gap, burst_end_ms=end_ms, committed_ms=now)
        added = False
        for row in rows:
            added |= self.calllog.add_utterance(row, burst_end_ms=end_ms, committed_ms=now)
        if gap is not None:
            added |= self.calllog.add_gap(gap, created_ms=now)
        return COMMITTED if added else ALREADY_DONE

    def _commit(self, job: Job, result: object) -> None:
        meta = job.meta
        text = getattr(result, "text", "")
        words = getattr(result, "words", ())
        reason = getattr(result, "gap", "")
        if reason:  # the engine suppressed its result (hallucination guards): a gap, no text
            end_ms = meta.start_ms + job.samples * 1000 // 48000
            gap = Gap(
                meta.id,
                meta.channel,
                meta.speaker_id,
                meta.speaker_name,
                meta.start_ms,
                end_ms,
                reason,
                "",
            )
            job.outcome = self._write(job, [], gap)
            self.counters.fenced_out += job.outcome == FENCED_OUT
            self.counters.audio_seconds += job.samples / 48000
            self.counters.suppressed += 1
            self._finish(job)
            return
        utterance = Utterance(
            id=meta.id,
            channel=meta.channel,
            speaker_id=meta.speaker_id,
            speaker_name=meta.speaker_name,
            start_ms=meta.start_ms,
            end_ms=meta.start_ms + job.samples * 1000 // 48000,
            text=text,
            words=tuple(words),
            model=self.factory.name,
            language=self.factory.language,
            clip=clip_path(meta),
            kind=meta.kind,
        )
        rows = rows_of(meta, utterance)  # several for a burst into several channels
        job.outcome = self._write(job, rows, None)
        self.counters.audio_seconds += job.samples / 48000
        if job.outcome == COMMITTED:
            self.counters.committed += 1
            job.committed = rows[0] if rows else None
            if self.on_committed is not None:
                for row in rows:
                    self.on_committed(row)
        elif job.outcome == FENCED_OUT:
            self.counters.fenced_out += 1
            log.warning(
                "the job was lost (lease ran out or committed live) before the commit: "
                "nothing written",
                extra={"burst": meta.id},
            )
        else:
            self.counters.already_done += 1
        self._finish(job)
