"""``/dashboard/events/ws``: the dashboard's alert event stream, with the live view's security
(``web.live``): same-origin handshake, ``{"type": "hello", "csrf"}`` first within 5 s, the
caller (session or bearer token) re-checked every 2 s (a disabled user, a revoked session or a
lost assignment narrows or ends the stream), refusals audited.

Server → client: ``{"type": "snapshot", "alerts": [...]}`` (the open alerts the caller may
see), then ``{"type": "alert", "alert": {...}}`` for every change of a visible alert, and
``{"type": "dropped", "count": n}`` when the caller read too slowly (oldest dropped). Client →
server: ``{"type": "ping"}`` → ``{"type": "pong"}`` (the page pings every 2 s and calls the
socket dead after 5 s without a message: ``static/heartbeat.js``; at most ``web.live.PING_RATE``
answers a second, the excess ignored); anything else is answered
``{"type": "error", "code": "bad_message" | "unknown_type"}`` and, after 20 of those, closed
(4400).

Close codes: 4400 no hello / too many bad messages, 4401 not signed in, 4403 refused, 4408 too
slow to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voice_server.alerts.feed import Subscriber
from voice_server.alerts.model import Alert
from voice_server.audit.chain import Result
from voice_server.web import security
from voice_server.web.alerts_access import alert_json, may_see, scope
from voice_server.web.auth import app_state, client_address
from voice_server.web.live import (
    CLOSE_BAD_HELLO,
    CLOSE_FORBIDDEN,
    CLOSE_SLOW,
    RECHECK_SECONDS,
    SEND_TIMEOUT,
    Refused,
    identify,
    ping_limit,
    read_hello,
)
from voice_server.web.policy import Action, Actor, decide

__all__ = ["router"]

router = APIRouter()
MAX_BAD = 20
MAX_MESSAGE = 4096


def _check(ws: WebSocket, csrf: str | None, *, first: bool) -> Actor:
    """Who is asking and whether they may use the dashboard (blocking: worker thread)."""
    state = app_state(ws)
    _, actor = identify(ws, csrf, first=first)
    decision = decide(actor, Action.DASHBOARD)
    if not decision:
        state.accounts.audit.record(
            actor,
            "alert.events",
            "dashboard",
            {"reason": decision.reason},
            Result.DENIED,
            address=client_address(ws),
        )
        raise Refused(CLOSE_FORBIDDEN, decision.reason)
    return actor


def _snapshot(ws: WebSocket, actor: Actor) -> str:
    state = app_state(ws)
    found = scope(actor, open_only=True, limit=200)
    alerts: list[Alert] = []
    if found is not None and state.alerts is not None:
        alerts = state.alerts.store.find(found)
    tz = state.config.zone
    return json.dumps(
        {"type": "snapshot", "alerts": [alert_json(a, tz) for a in reversed(alerts)]},
        ensure_ascii=False,
    )


async def _pump(ws: WebSocket, sub: Subscriber) -> None:
    tz = app_state(ws).config.zone
    reported = 0
    while True:
        await sub.wake.wait()
        sub.wake.clear()
        if sub.dropped > reported:
            reported = sub.dropped
            await ws.send_text(json.dumps({"type": "dropped", "count": reported}))
        while sub.queue:
            alert = sub.queue.popleft()
            text = json.dumps({"type": "alert", "alert": alert_json(alert, tz)}, ensure_ascii=False)
            try:
                await asyncio.wait_for(ws.send_text(text), SEND_TIMEOUT)
            except TimeoutError:
                raise Refused(CLOSE_SLOW, "too slow to read") from None


def reply_to(text: str) -> dict[str, str]:
    """The answer to one client message [pure]."""
    if len(text) > MAX_MESSAGE:
        return {"type": "error", "code": "bad_message"}
    try:
        msg = json.loads(text)
    except ValueError:
        return {"type": "error", "code": "bad_message"}
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        return {"type": "error", "code": "bad_message"}
    if msg["type"] == "ping":
        return {"type": "pong"}
    return {"type": "error", "code": "unknown_type"}


async def _read(ws: WebSocket) -> None:
    bad = 0
    pings = ping_limit()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            answer = reply_to(await ws.receive_text())
            if answer["type"] == "error":
                bad += 1
                if bad > MAX_BAD:
                    raise Refused(CLOSE_BAD_HELLO, "too many bad messages")
            elif not pings.allow(time.monotonic()):
                continue  # a ping storm: no more answers than a page's heartbeat needs
            await ws.send_text(json.dumps(answer))


async def _recheck(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        actor = await asyncio.to_thread(_check, ws, None, first=False)
        sub.visible = lambda alert, actor=actor: may_see(actor, alert)  # type: ignore[misc]


@router.websocket("/dashboard/events/ws")
async def events_socket(ws: WebSocket) -> None:
    state = app_state(ws)
    if ws.headers.get("origin") and not security.same_origin(state.config, ws):
        await ws.close(CLOSE_FORBIDDEN)
        return
    await ws.accept()
    sub: Subscriber | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        csrf = await read_hello(ws)
        actor = await asyncio.to_thread(_check, ws, csrf, first=True)
        if state.alerts is None:
            raise Refused(CLOSE_FORBIDDEN, "alerts are off")
        sub = state.alerts.feed.subscribe(lambda alert: may_see(actor, alert))
        await ws.send_text(await asyncio.to_thread(_snapshot, ws, actor))
        tasks = [
            asyncio.create_task(_pump(ws, sub), name="events-pump"),
            asyncio.create_task(_read(ws), name="events-read"),
            asyncio.create_task(_recheck(ws, sub), name="events-recheck"),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    except Refused as exc:
        with contextlib.suppress(Exception):
            await ws.close(exc.code, exc.reason)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if sub is not None and state.alerts is not None:
            state.alerts.feed.unsubscribe(sub)
