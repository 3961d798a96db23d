"""Alert transitions with their audit rows (one transaction each), and the server's own alert
sources: the keyword matcher and the transcription watcher.

Every method that writes is blocking (a worker thread); the loops run on the event loop and
move their database work to threads. Voice never waits on any of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voice_server.alerts import model
from voice_server.alerts.feed import AlertFeed
from voice_server.alerts.keywords import Keyword, matches
from voice_server.alerts.model import Alert, AlertError, AlertKind, AlertState, Resolution
from voice_server.alerts.store import DEPLOYMENT, AlertStore
from voice_server.audit.chain import Result
from voice_server.audit.log import AuditLog, AuditSubject
from voice_server.calllog.model import Utterance
from voice_server.calllog.normalize import normalize
from voice_server.calllog.store import CallLog
from voice_server.metrics import Family
from voice_server.store.job_lock import JobLocks, LocalJobLocks

__all__ = ["AlertService", "Handler", "transcription_step"]

log = logging.getLogger(__name__)
MATCH_CURSOR = "keywords"
MATCH_BATCH = 200
MATCH_JOB = "keyword-match"  # its job lock (store/job_lock.py)
MATCH_POLL_S = 0.25  # commits by another process (the sidecar's catch-up) are looked for this often
NOTIFIED_POLL_S = 5.0  # ... and alert events, when NOTIFY wakes both (PostgreSQL): the fallback
WATCH_SECONDS = 2.0
TRANSCRIPTION_DEDUPE = "transcription"
TRANSITIONS = {
    "alert.acknowledge": "acknowledged",
    "alert.resolve": "resolved",
    "alert.escalate": "escalated",
}


@dataclass(frozen=True, slots=True)
class Handler:
    """Who moves an alert: a user (sub, display name, role) and where they came from."""

    sub: str
    name: str
    role_name: str
    address: str = ""


SYSTEM = Handler(model.SYSTEM, model.SYSTEM, "")


def now_ms() -> int:
    return int(time.time() * 1000)


def transcription_step(state: str, open_alert: Alert | None) -> str | None:
    """``raise`` when transcription stopped and no alert says so, ``resolve`` when it is up
    again and one is open, else None [pure]."""
    if state == "stopped" and open_alert is None:
        return "raise"
    if state == "up" and open_alert is not None:
        return "resolve"
    return None


class AlertService:
    def __init__(self, store: AlertStore, audit: AuditLog, calllog: CallLog | None) -> None:
        self.store = store
        self.audit = audit
        self.calllog = calllog
        self.feed = AlertFeed(store)
        #: called inside every alert transition's transaction with (conn, alert, transition:
        #: raised | acknowledged | resolved | escalated): the webhook outbox
        self.outbox: list[Callable[[Any, Alert, str], None]] = []
        #: called (from any thread) after a transition committed: the webhook dispatcher's nudge
        self.committed: list[Callable[[], None]] = []
        self.matched = 0  # keyword alerts raised here
        self.locks: JobLocks = LocalJobLocks()  # PostgreSQL: one node matches at a time
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._match_nudge: asyncio.Event | None = None
        self.match_poll_s = MATCH_POLL_S
        #: PostgreSQL: a :class:`~voice_server.store.pg_notify.PgNotifications` (set before
        #: :meth:`start`): commit events wake the matcher and alert events the feed by NOTIFY,
        #: and both poll only every :data:`NOTIFIED_POLL_S` as a fallback
        self.notifications: Any = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self, transcription_state: Callable[[], str] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._match_nudge = asyncio.Event()
        if self.notifications is not None:
            from voice_server.store.pg_schema import ALERT_CHANNEL, COMMIT_CHANNEL

            self.notifications.on(COMMIT_CHANNEL, self._notified_commit)
            self.notifications.on(ALERT_CHANNEL, self._notified_alert)
            self.match_poll_s = self.feed.poll_seconds = NOTIFIED_POLL_S
            self.notifications.start()
        await self.feed.start()
        if self.calllog is not None:
            self._tasks.append(asyncio.create_task(self._match_forever(), name="keyword-match"))
        if transcription_state is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._watch_transcription(transcription_state), name="alert-transcription"
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.feed.stop()
        if self.notifications is not None:
            await asyncio.to_thread(self.notifications.stop)

    def families(self) -> list[Family]:
        c = self.feed.counters
        return [
            Family(
                "voice_alert_keyword_matches_total", "counter", "Keyword alerts raised here"
            ).add(self.matched),
            Family("voice_alert_events_total", "counter", "Alert events read by the feed").add(
                c.events
            ),
            Family(
                "voice_alert_feed_dropped_total",
                "counter",
                "Alert messages dropped for event-stream readers too slow to keep up",
            ).add(c.dropped),
            Family("voice_alert_subscribers", "gauge", "Open alert event streams").add(
                len(self.feed.subscribers)
            ),
        ]

    def _in_commit(self, conn: Any, alert: Alert, transition: str) -> None:
        for hook in self.outbox:
            hook(conn, alert, transition)

    def _changed(self) -> None:
        """Wake the feed (from any thread)."""
        for hook in self.committed:
            hook()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.feed.nudge)

    def _soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback)

    def _notified_commit(self) -> None:
        """A commit by any process on any node (NOTIFY, the listener's thread)."""
        self._soon(self.commit_seen)

    def _notified_alert(self) -> None:
        """An alert event by any process on any node (NOTIFY, the listener's thread)."""
        self._soon(self.feed.nudge)

    def commit_seen(self, *_: object) -> None:
        """The live link says an utterance was committed: match now (on the event loop)."""
        if self._match_nudge is not None:
            self._match_nudge.set()

    # ------------------------------------------------------------------ transitions (blocking)
    def raise_alert(self, alert: Alert, by: Handler | AuditSubject | str = SYSTEM) -> Alert | None:
        """Store ``alert`` and audit it; None when its dedupe key is taken (nothing written)."""
        sub = by.sub if isinstance(by, Handler) else by
        address = by.address if isinstance(by, Handler) else ""
        with self.store.db.transaction() as conn:
            if not self.store.insert(conn, alert):
                return None
            self.audit.record(
                sub, "alert.raise", f"alert:{alert.id}", _details(alert), address=address, conn=conn
            )
            self._in_commit(conn, alert, "raised")
        self._changed()
        return alert

    def acknowledge(self, alert_id: str, by: Handler) -> Alert:
        return self._move(alert_id, by, "alert.acknowledge", lambda a: model.acknowledge(
            a, by.sub, by.name, now_ms()
        ))  # fmt: skip

    def resolve(self, alert_id: str, by: Handler, resolution: Resolution, note: str) -> Alert:
        return self._move(
            alert_id,
            by,
            "alert.resolve",
            lambda a: model.resolve(a, by.sub, by.name, resolution, note, now_ms()),
            {"resolution": resolution.value, "note_chars": len(note)},
        )

    def escalate(self, alert_id: str) -> Alert:
        return self._move(alert_id, SYSTEM, "alert.escalate", lambda a: model.escalate(a, now_ms()))

    def _move(
        self,
        alert_id: str,
        by: Handler,
        action: str,
        step: Callable[[Alert], Alert],
        extra: dict[str, object] | None = None,
    ) -> Alert:
        refused: tuple[AlertError, str] | None = None
        with self.store.db.transaction() as conn:
            before = self.store.get(alert_id, conn)
            if before is None:
                raise AlertError("not_found", "no such alert", 404)
            try:
                after = step(before)
            except AlertError as exc:
                refused = (exc, before.state.value)
            else:
                if not self.store.replace(conn, before, after):  # not under the write lock
                    raise AlertError("alert_state", "the alert changed meanwhile", 409)
                self.audit.record(
                    by,
                    action,
                    f"alert:{alert_id}",
                    {**_details(after), **(extra or {})},
                    address=by.address,
                    conn=conn,
                )
                self._in_commit(conn, after, TRANSITIONS[action])
        if refused is not None:  # audited after the (empty) transaction
            error, state = refused
            self.audit.record(
                by,
                action,
                f"alert:{alert_id}",
                {"error": error.code, "state": state},
                Result.FAILED,
                address=by.address,
            )
            raise error
        self._changed()
        return after

    # ------------------------------------------------------------------ keyword matching
    async def _match_forever(self) -> None:
        assert self._match_nudge is not None
        while True:  # matching first: the first run places the cursor before any commit comes
            self._match_nudge.clear()
            try:
                while await asyncio.to_thread(self.match_once) == MATCH_BATCH:
                    pass
            except Exception:
                log.exception("keyword matching failed")
                await asyncio.sleep(min(self.match_poll_s, 1.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._match_nudge.wait(), self.match_poll_s)

    def match_once(self) -> int:
        """Match the commit events after this deployment's cursor: alerts and the cursor's new
        place commit together, under the store's write lock, so any number of processes
        running this raise each alert once; on PostgreSQL one node at a time matches (the job
        lock: skipped, 0). Returns how many events were read."""
        with self.locks.step(MATCH_JOB) as held:
            return self._match_once() if held else 0

    def _match_once(self) -> int:
        calllog = self.calllog
        assert calllog is not None
        seen = self.store.cursor(MATCH_CURSOR)
        if seen is not None and calllog.last_event_seq() <= seen:
            return 0  # nothing new: no write transaction (it would take the write lock)
        raised: list[Alert] = []
        with self.store.db.transaction() as conn:
            seq = self.store.cursor(MATCH_CURSOR, conn)
            if seq is None:  # the first run of this deployment starts from now
                self.store.set_cursor(conn, MATCH_CURSOR, calllog.last_event_seq())
                return 0
            events = calllog.events_after(seq, MATCH_BATCH)
            if not events:
                return 0
            lists = self.store.keywords()
            for event in events:
                if event.kind != "utterance":
                    continue
                keywords = [*lists.get(DEPLOYMENT, []), *lists.get(event.channel, [])]
                if not keywords:
                    continue
                utterance = calllog.get(event.ref)
                if utterance is None or not utterance.text:
                    continue
                lang = utterance.language
                for k in matches(normalize(utterance.text, lang), keywords, lang):
                    alert = _keyword_alert(utterance, k, event.created_ms)
                    if self.store.insert(conn, alert):
                        self.audit.record(
                            model.SYSTEM,
                            "alert.raise",
                            f"alert:{alert.id}",
                            _details(alert),
                            conn=conn,
                        )
                        self._in_commit(conn, alert, "raised")
                        raised.append(alert)
            self.store.set_cursor(conn, MATCH_CURSOR, events[-1].seq)
        if raised:
            self.matched += len(raised)
            self._changed()
        return len(events)

    # ------------------------------------------------------------------ transcription
    async def _watch_transcription(self, state: Callable[[], str]) -> None:
        while True:
            try:
                await asyncio.to_thread(self.transcription_once, state())
            except Exception:
                log.exception("transcription alert check failed")
            await asyncio.sleep(WATCH_SECONDS)

    def transcription_once(self, state: str) -> Alert | None:
        open_alert = self.store.by_dedupe(TRANSCRIPTION_DEDUPE)
        step = transcription_step(state, open_alert)
        if step == "raise":
            t = now_ms()
            return self.raise_alert(
                Alert(
                    id=model.new_alert_id(t),
                    kind=AlertKind.TRANSCRIPTION,
                    channel="",
                    state=AlertState.RAISED,
                    raised_ms=t,
                    raised_by=model.SYSTEM,
                    detail={"state": state},
                    dedupe=TRANSCRIPTION_DEDUPE,
                    updated_ms=t,
                )
            )
        if step == "resolve" and open_alert is not None:
            with contextlib.suppress(AlertError):  # a supervisor resolved it meanwhile
                return self.resolve(
                    open_alert.id, SYSTEM, Resolution.VALID, "transcription is up again"
                )
        return None


def _keyword_alert(utterance: Utterance, k: Keyword, committed_ms: int) -> Alert:
    t = now_ms()
    return Alert(
        id=model.new_alert_id(t),
        kind=AlertKind.KEYWORD,
        channel=utterance.channel,
        state=AlertState.RAISED,
        raised_ms=t,
        raised_by=model.SYSTEM,
        subject=utterance.speaker_id,
        subject_name=utterance.speaker_name,
        keyword=k.text,
        utterance=utterance.id,
        detail={"start_ms": utterance.start_ms, "committed_ms": committed_ms},
        dedupe=f"keyword:{utterance.id}:{k.norm}",
        updated_ms=t,
    )


def _details(alert: Alert) -> dict[str, object]:
    """What the audit log keeps of an alert: never transcript text."""
    out: dict[str, object] = {"kind": alert.kind.value, "state": alert.state.value}
    if alert.channel:
        out["channel"] = alert.channel
    if alert.utterance:
        out["utterance"] = alert.utterance
    if alert.keyword:
        out["keyword"] = alert.keyword
    if alert.subject:
        out["subject"] = alert.subject
    return out
