"""The webhook outbox and dispatcher.

:class:`Outbox` turns alert transitions into deliveries inside the transition's own transaction
(``AlertService.outbox``), so an alert and its webhook events commit together, whichever process
made the change. :class:`Dispatcher` sends due deliveries (at most :data:`CONCURRENCY` at a
time, in worker threads: the event loop, voice and the call log never wait on an endpoint),
signs each attempt afresh, follows no redirect (3xx is a failure), retries on the backoff
schedule, dead-letters the exhausted, and audits every attempt.

Order: each endpoint has a lane; its deliveries are sent one at a time in the order they were
queued (an emergency's ``raised`` reaches a receiver before its ``resolved``), different endpoints
in parallel. A failed attempt does not hold the lane: later events go on while it waits for its
retry (receivers order by the payload's ``timestamp``, and dedupe on ``webhook-id``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import ssl
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from voice_server.alerts.model import Alert
from voice_server.audit.chain import Result
from voice_server.audit.log import AuditLog
from voice_server.metrics import Family
from voice_server.store.job_lock import JobLocks, LocalJobLocks
from voice_server.webhooks import sign
from voice_server.webhooks.rules import (
    BACKOFF_S,
    announcement_payload,
    event_types,
    next_delay,
    payload,
)
from voice_server.webhooks.store import Delivery, Endpoint, WebhookStore

__all__ = ["CONCURRENCY", "Dispatcher", "Outbox"]

log = logging.getLogger(__name__)
CONCURRENCY = 4
TIMEOUT_S = 10.0
IDLE_POLL_S = 1.0
JOB = "webhook-claim"


class Outbox:
    def __init__(self, store: WebhookStore, dashboard_url: str | None) -> None:
        self.store = store
        self.dashboard_url = dashboard_url

    def on_alert(self, conn: sqlite3.Connection, alert: Alert, transition: str) -> None:
        now = int(time.time() * 1000)
        stamp = datetime.fromtimestamp(now / 1000, UTC).isoformat(timespec="milliseconds")
        for event_type in event_types(alert, transition):
            msg_id = f"msg_{alert.id}_{event_type.replace('.', '_')}"
            body = json.dumps(
                payload(event_type, alert, stamp, self.dashboard_url),
                ensure_ascii=False,
                separators=(",", ":"),
            )
            self.store.enqueue(conn, msg_id, event_type, body, now)

    def on_announcement(
        self,
        conn: sqlite3.Connection,
        announcement_id: str,
        author: tuple[str, str],
        text: str,
        urgent: bool,
        channels: list[str],
    ) -> None:
        """``announcement.sent`` once the announcement has played (inside the caller's
        transaction)."""
        now = int(time.time() * 1000)
        stamp = datetime.fromtimestamp(now / 1000, UTC).isoformat(timespec="milliseconds")
        body = announcement_payload(
            announcement_id, author, text, urgent, channels, stamp, self.dashboard_url
        )
        text_body = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        msg_id = f"msg_{announcement_id}_announcement_sent"
        self.store.enqueue(conn, msg_id, "announcement.sent", text_body, now)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is answered as an HTTPError: a failure, never followed


def post(endpoint: Endpoint, msg_id: str, body: bytes, now_s: int) -> tuple[int | None, str]:
    """One signed POST: (HTTP status or None, error text)."""
    context = ssl.create_default_context(cafile=endpoint.ca_file or None)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _NoRedirect(), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(
        endpoint.url,
        data=body,
        headers={
            **sign.headers(endpoint.secret, msg_id, now_s, body),
            "user-agent": "voice-server",
        },
        method="POST",
    )
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return int(exc.code), f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, str(reason)[:300]


class _Lane:
    """One endpoint's deliveries in flight: sent one at a time, in the order they were claimed."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class Dispatcher:
    def __init__(
        self, store: WebhookStore, audit: AuditLog, backoff: tuple[int, ...] = BACKOFF_S
    ) -> None:
        self.store = store
        self.audit = audit
        self.backoff = backoff
        self.locks: JobLocks = LocalJobLocks()  # PostgreSQL: one node claims at a time
        self.sent = 0
        self.failed = 0
        self.dead = 0
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._lanes: dict[str, _Lane] = {}  # endpoint id -> its lane (while it has deliveries)
        self._inflight: set[int] = set()  # delivery ids claimed and not yet finished here

    def nudge(self) -> None:
        """New deliveries may be due (from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="webhook-dispatch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._wake is not None
        gate = asyncio.Semaphore(CONCURRENCY)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    due = await asyncio.to_thread(
                        self.claim_due, int(time.time() * 1000), CONCURRENCY * 4
                    )
                except Exception:
                    log.exception("webhook queue unreadable")
                    due = []
                fresh = [d for d in due if d.id not in self._inflight]  # a lease ran out here
                for delivery in fresh:
                    self._inflight.add(delivery.id)
                    lane = self._lanes.setdefault(delivery.endpoint_id, _Lane())
                    lane.users += 1
                    task = asyncio.create_task(self._one(delivery, gate, lane))
                    running.add(task)
                    task.add_done_callback(running.discard)
                while len(running) >= CONCURRENCY * 4:  # bounded: claim more once some are sent
                    await asyncio.wait(set(running), return_when=asyncio.FIRST_COMPLETED)
                if fresh:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
                self._wake.clear()
        finally:
            for task in running:
                task.cancel()

    def claim_due(self, now_ms: int, limit: int) -> list[Delivery]:
        """Blocking: the due deliveries, claimed under the job lock (one node at a time on
        PostgreSQL; skipped: none now, the next poll or nudge tries again)."""
        with self.locks.step(JOB) as held:
            return self.store.claim_due(now_ms, limit) if held else []

    async def _one(self, delivery: Delivery, gate: asyncio.Semaphore, lane: _Lane) -> None:
        try:
            async with lane.lock, gate:  # the lane's lock is FIFO: queue order per endpoint
                await asyncio.to_thread(self.deliver, delivery)
        except Exception:
            log.exception("webhook delivery failed", extra={"delivery": delivery.id})
        finally:
            self._inflight.discard(delivery.id)
            lane.users -= 1
            if lane.users == 0 and self._lanes.get(delivery.endpoint_id) is lane:
                del self._lanes[delivery.endpoint_id]

    def deliver(self, d: Delivery) -> str:
        """Send one claimed delivery and record what happened (blocking): delivered, retry,
        dead, or gone (its endpoint was removed)."""
        endpoint = self.store.endpoint(d.endpoint_id)
        if endpoint is None:
            return "gone"
        status, error = post(endpoint, d.msg_id, d.body.encode(), int(time.time()))
        now = int(time.time() * 1000)
        attempt = d.attempts + 1
        if status is not None and 200 <= status < 300:
            state, next_at, outcome = "delivered", now, "delivered"
            self.sent += 1
        else:
            delay = next_delay(attempt, self.backoff)
            self.failed += 1
            if delay is None:
                state, next_at, outcome = "dead", now, "dead"
                self.dead += 1
            else:
                state, next_at, outcome = "queued", now + delay * 1000, "retry"
        with self.store.db.transaction() as conn:
            self.store.finish(
                conn, d, state=state, next_at_ms=next_at, status=status, error=error, now_ms=now
            )
            self.audit.record(
                "system",
                "webhook.deliver",
                f"webhook:{d.endpoint_id}",
                {
                    "msg_id": d.msg_id,
                    "event_type": d.event_type,
                    "attempt": attempt,
                    "status": status,
                    "outcome": outcome,
                },
                Result.OK if outcome == "delivered" else Result.FAILED,
                conn=conn,
            )
        if outcome == "dead":
            log.warning(
                "webhook dead-lettered", extra={"endpoint": d.endpoint_id, "msg_id": d.msg_id}
            )
        return outcome

    def families(self) -> list[Family]:
        attempts = Family("voice_webhook_attempts_total", "counter", "Webhook delivery attempts")
        attempts.add(self.sent, outcome="delivered")
        attempts.add(self.failed, outcome="failed")
        dead = Family(
            "voice_webhook_dead_total",
            "counter",
            "Webhook deliveries dead-lettered here, by reason",
        )
        dead.add(self.dead, reason="retries_exhausted")
        dead.add(self.store.overflow, reason="queue_full")
        return [attempts, dead]
