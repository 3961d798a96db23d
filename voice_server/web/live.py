"""``/dashboard/live/<channel>/ws``: the live view's WebSocket.

Order of checks, before anything of the channel is sent:
1. the handshake's ``Origin`` is our own (``security.same_origin``) — required with a session
   cookie (a browser); a bearer token (``aud=api``) carries no ambient credential;
2. the first message is ``{"type": "hello", "csrf": <the session's CSRF token>}`` within 5 s
   (bearer callers send it without ``csrf``);
3. the caller (``web.auth``: session cookie or bearer token) may ``calllog.live`` this channel
   (``web.policy``); refusals are audited, the opening of a live view too.
Then a presence snapshot and the feed (``signaling.livehub``). The caller is re-checked every 2 s: a
disabled user, a revoked session or a removed assignment ends the view (4401/4403).

The viewer's ``{"type": "ping"}`` is answered ``{"type": "pong"}`` (the page pings every 2 s and
calls the socket dead after 5 s without a message: ``static/heartbeat.js``), at most
:data:`PING_RATE` a second; the excess and anything else the viewer sends are ignored.

Close codes: 4400 no hello, 4401 not signed in, 4403 refused (origin, CSRF, role, assignment),
4404 no such channel, 4408 too slow to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from voice_server.audit.chain import Result
from voice_server.ratelimit import TokenBucket
from voice_server.signaling.livehub import LiveHub, Viewer
from voice_server.web import security
from voice_server.web.auth import Auth, app_state, authenticate, client_address
from voice_server.web.policy import Action, Actor, decide

__all__ = ["identify", "ping_limit", "read_hello", "router"]

log = logging.getLogger(__name__)
router = APIRouter()
HELLO_TIMEOUT = 5.0
RECHECK_SECONDS = 2.0
SEND_TIMEOUT = 10.0
CLOSE_BAD_HELLO, CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN = 4400, 4401, 4403
CLOSE_NOT_FOUND, CLOSE_SLOW = 4404, 4408
#: a dashboard socket's pings answered per second at most (burst PING_BURST); a page pings every
#: 2 s, a storm gets no more answers than this
PING_RATE, PING_BURST = 2.0, 10
PONG = json.dumps({"type": "pong"})


class Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _hub(ws: WebSocket) -> LiveHub:
    hub: LiveHub = app_state(ws).live
    return hub


async def _hello(ws: WebSocket) -> str | None:
    try:
        text = await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT)
        msg = json.loads(text)
    except (TimeoutError, ValueError, KeyError):
        raise Refused(CLOSE_BAD_HELLO, "send hello first") from None
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise Refused(CLOSE_BAD_HELLO, "send hello first")
    csrf = msg.get("csrf")
    return csrf if isinstance(csrf, str) and len(csrf) <= 128 else None


def identify(ws: WebSocket, csrf: str | None, *, first: bool) -> tuple[Auth, Actor]:
    """The signed-in caller of a dashboard WebSocket: a session needs our origin and, on the
    first check, the session's CSRF token in its hello (blocking: worker thread)."""
    auth = authenticate(ws)
    actor = auth.actor
    if actor is None:
        raise Refused(CLOSE_UNAUTHORIZED, "sign in first")
    if actor.via == "session":
        if not security.same_origin(app_state(ws).config, ws):
            raise Refused(CLOSE_FORBIDDEN, "cross-origin")
        if first:
            try:
                security.check_csrf(auth.csrf_expected, csrf)
            except Exception:
                raise Refused(CLOSE_FORBIDDEN, "missing or wrong CSRF token") from None
    return auth, actor


def _check(ws: WebSocket, channel: str, csrf: str | None, *, first: bool) -> Auth:
    """Who is asking and whether they may watch ``channel`` (blocking: worker thread)."""
    state = app_state(ws)
    auth, actor = identify(ws, csrf, first=first)
    decision = decide(actor, Action.LIVE, channel=channel)
    if not decision:
        state.accounts.audit.record(
            actor,
            Action.LIVE.value,
            f"channel:{channel}",
            {"reason": decision.reason},
            Result.DENIED,
            address=client_address(ws),
        )
        raise Refused(CLOSE_FORBIDDEN, decision.reason)
    if first:
        if state.channels.get(channel) is None:
            raise Refused(CLOSE_NOT_FOUND, "no such channel")
        state.accounts.audit.record(
            actor, Action.LIVE.value, f"channel:{channel}", address=client_address(ws)
        )
    return auth


read_hello = _hello


async def _pump(ws: WebSocket, viewer: Viewer, hub: LiveHub) -> None:
    reported = 0
    while True:
        await viewer.wake.wait()
        viewer.wake.clear()
        if viewer.dropped > reported:
            reported = viewer.dropped
            await ws.send_text(json.dumps({"type": "dropped", "count": reported}))
        while viewer.queue:
            text = viewer.queue.popleft()
            try:
                await asyncio.wait_for(ws.send_text(text), SEND_TIMEOUT)
            except TimeoutError:
                raise Refused(CLOSE_SLOW, "too slow to read") from None
            hub.counters.sent += 1


def ping_limit() -> TokenBucket:
    """One socket's budget of answered pings."""
    return TokenBucket(PING_RATE, PING_BURST, time.monotonic())


def _is_ping(text: str) -> bool:
    try:
        msg = json.loads(text) if len(text) <= 256 else None
    except ValueError:
        return False
    return isinstance(msg, dict) and msg.get("type") == "ping"


async def _drain(ws: WebSocket) -> None:
    """Answer the viewer's pings and ignore anything else it sends, until it goes."""
    pings = ping_limit()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            if _is_ping(await ws.receive_text()) and pings.allow(time.monotonic()):
                await ws.send_text(PONG)


async def _recheck(ws: WebSocket, channel: str) -> None:
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        await asyncio.to_thread(_check, ws, channel, None, first=False)


@router.websocket("/dashboard/live/{channel}/ws")
async def live_socket(ws: WebSocket, channel: str) -> None:
    if ws.headers.get("origin") and not security.same_origin(app_state(ws).config, ws):
        await ws.close(CLOSE_FORBIDDEN)  # before accepting: the handshake is refused
        return
    await ws.accept()
    hub = _hub(ws)
    viewer: Viewer | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        csrf = await _hello(ws)
        await asyncio.to_thread(_check, ws, channel, csrf, first=True)
        viewer = hub.attach(channel)
        tasks = [
            asyncio.create_task(_pump(ws, viewer, hub), name="live-pump"),
            asyncio.create_task(_drain(ws), name="live-drain"),
            asyncio.create_task(_recheck(ws, channel), name="live-recheck"),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a Refused from the pump or the re-check
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
        if viewer is not None:
            hub.detach(viewer)
