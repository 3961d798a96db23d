"""The announcer: checks, synthesises once, stores, plays into every target channel, then
writes one call-log row per reached channel and who heard it (event loop; blocking work in
worker threads).

Nothing is stored until the audio exists: a refusal or a synthesis failure leaves no row, no
clip. A failure later (while playing) marks the announcement ``failed`` with its reason, logged;
the server goes on.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voice_server.announce.heard import Tally
from voice_server.announce.player import Outcome, Stage, play
from voice_server.announce.request import AnnounceRequest
from voice_server.announce.speech import FRAME_SAMPLES, Clip, encode, render
from voice_server.announce.store import Announcement, AnnouncementStore, Target
from voice_server.calllog.burst import DONE, SHARED_CLIPS
from voice_server.calllog.clips import ClipStore
from voice_server.calllog.model import Utterance, new_burst_id
from voice_server.calllog.ogg import OggOpusWriter
from voice_server.calllog.store import CallLog
from voice_server.talk.priority import Kind, Level

__all__ = ["Announcer", "Author", "prepare"]

log = logging.getLogger(__name__)

MODEL = {"ja": "tts:openjtalk-mei", "en": "tts:espeak-ng"}
RECORDED_MODEL = "recorded"  # an uploaded recording: no synthesis, no ASR


@dataclass(frozen=True, slots=True)
class Author:
    sub: str
    name: str


def prepare(request: AnnounceRequest) -> Clip:
    """Synthesise and encode (blocking: a worker thread). AnnounceError on failure."""
    return encode(render(request.text, request.language, request.repeat))


def ogg_of(announcement_id: str, clip: Clip) -> bytes:
    """The shared clip's Ogg/Opus bytes (speech only, no cue; pure)."""
    out = io.BytesIO()
    writer = OggOpusWriter(
        out.write,
        serial=int(announcement_id[13:19], 16),
        tags={"KIND": Kind.ANNOUNCEMENT.value, "BROADCAST": announcement_id},
    )
    for frame in clip.frames:
        writer.add(frame, FRAME_SAMPLES)
    writer.close()
    return out.getvalue()


def write_clip(
    data_dir: Path, announcement_id: str, clip: Clip, clips: ClipStore | None = None
) -> str:
    """The shared Ogg/Opus clip, relative to the data directory: a file there, and in ``clips``
    (on PostgreSQL its ``clip`` table: every node plays it). Blocking; on a failure nothing is
    left behind."""
    relative = f"{SHARED_CLIPS}/{announcement_id}{DONE}"
    data = ogg_of(announcement_id, clip)
    path = data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    if clips is not None:
        try:
            clips.put(relative, data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return relative


class Announcer:
    def __init__(
        self,
        *,
        store: AnnouncementStore,
        calllog: CallLog,
        stage: Stage,
        sources: dict[str, str],
        source_levels: dict[str, int],
        members: Callable[[str], list[str]],
        data_dir: Path,
        prepare_clip: Callable[[AnnounceRequest], Clip] = prepare,
        clips: ClipStore | None = None,
    ) -> None:
        self.store = store
        self.calllog = calllog
        self.stage = stage
        self._sources = sources  # the hub's: names and levels for talk events
        self._levels = source_levels
        self._members = members
        self.data_dir = data_dir
        self._prepare = prepare_clip
        self.clips = clips  # the shared store of clips (PostgreSQL's: every node plays them)
        self.tasks: set[asyncio.Task[None]] = set()
        #: called (in a worker thread) once an announcement has played in at least one channel,
        #: with the channels it reached: the ``announcement.sent`` webhook
        self.on_sent: list[Callable[[Announcement, list[str]], None]] = []

    async def announce(
        self,
        author: Author,
        request: AnnounceRequest,
        channels: tuple[str, ...],
        *,
        recording: Clip | None = None,
    ) -> Announcement:
        """Synthesise (or take the ``recording``), store, start playing; the stored
        announcement (AnnounceError before anything is stored when the text cannot be
        spoken)."""
        clip: Clip = (
            recording if recording is not None else await asyncio.to_thread(self._prepare, request)
        )
        model = RECORDED_MODEL if recording is not None else MODEL.get(request.language, "tts")
        now_ms = time.time_ns() // 1_000_000
        announcement_id = new_burst_id(now_ms)
        relative = await asyncio.to_thread(
            write_clip, self.data_dir, announcement_id, clip, self.clips
        )
        announcement = Announcement(
            id=announcement_id,
            author=author.sub,
            author_name=author.name,
            text=request.text,
            language=request.language,
            urgent=request.urgent,
            repeat=request.repeat,
            status="playing",
            error="",
            seconds=round(clip.seconds, 2),
            clip=relative,
            created_ms=now_ms,
            targets=tuple(Target(c, "waiting") for c in channels),
        )
        try:
            await asyncio.to_thread(self.store.create, announcement)
        except BaseException:
            (self.data_dir / relative).unlink(missing_ok=True)
            raise
        task = asyncio.create_task(
            self._run(announcement, clip, model), name=f"announce-{announcement_id}"
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        log.info(
            "announcement",
            extra={"id": announcement_id, "channels": list(channels), "urgent": request.urgent},
        )
        return announcement

    async def _run(self, a: Announcement, clip: Clip, model: str) -> None:
        level = int(Level.URGENT if a.urgent else Level.ROUTINE)
        try:
            outcomes = await asyncio.gather(
                *(self._play(a, t.channel, clip, level) for t in a.targets)
            )
            reached = [o for o in outcomes if o.status == "played"]
            await asyncio.to_thread(self._record, a, reached, model)
            status = "done" if reached else "failed"
            error = "" if reached else "no channel had a free slot within 30 s"
            await asyncio.to_thread(self.store.finish, a.id, status, error)
            if reached:
                await asyncio.to_thread(self._sent, a, [o.channel for o in reached])
        except asyncio.CancelledError:
            await asyncio.to_thread(self.store.finish, a.id, "failed", "server stopped")
            raise
        except Exception as exc:
            log.exception("announcement failed", extra={"id": a.id})
            await asyncio.to_thread(self.store.finish, a.id, "failed", f"{type(exc).__name__}")

    async def _play(self, a: Announcement, channel: str, clip: Clip, level: int) -> Outcome:
        source_id = f"announce-{a.id}-{channel}"
        self._sources[source_id] = a.author_name
        self._levels[source_id] = level

        def started(start_ms: int) -> None:
            self.store.set_target(a.id, channel, "playing", start_ms=start_ms)

        try:
            outcome = await play(
                self.stage, source_id, channel, clip, level=level, urgent=a.urgent, on_start=started
            )
        finally:
            self._sources.pop(source_id, None)
            self._levels.pop(source_id, None)
        await asyncio.to_thread(
            self.store.set_target,
            a.id,
            channel,
            outcome.status,
            start_ms=outcome.start_ms,
            end_ms=outcome.end_ms,
        )
        return outcome

    def _sent(self, a: Announcement, channels: list[str]) -> None:
        for listener in self.on_sent:
            try:
                listener(a, channels)
            except Exception:  # the announcement was played: a webhook failure is logged only
                log.exception("announcement.sent listener failed", extra={"id": a.id})

    def _record(self, a: Announcement, reached: list[Outcome], model: str) -> None:
        """One call-log row per reached channel (shared clip, uid ``<id>:<channel>``) and who
        heard it there (blocking)."""
        now_ms = time.time_ns() // 1_000_000
        for o in reached:
            assert o.start_ms is not None and o.end_ms is not None
            self.calllog.add_utterance(
                Utterance(
                    id=f"{a.id}:{o.channel}",
                    channel=o.channel,
                    speaker_id=a.author,
                    speaker_name=a.author_name,
                    start_ms=o.start_ms,
                    end_ms=o.end_ms,
                    text=a.text,
                    model=model,
                    language=a.language,
                    clip=a.clip,
                    kind=Kind.ANNOUNCEMENT.value,
                    broadcast_id=a.id,
                ),
                burst_end_ms=o.end_ms,
                committed_ms=now_ms,
            )
            tally = o.tally or Tally()
            self.store.set_heard(a.id, o.channel, tally.fractions(self._members(o.channel)))

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
