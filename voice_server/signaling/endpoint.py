"""The signaling WebSocket endpoint: moves messages between a socket and the hub.

Order of a connection: accept → the first message must be ``join`` with a valid token (checked
before any session exists) → messages until leave or disconnect. Every malformed message is
answered with an ``error`` and the connection stays up; authentication failures are fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voice_server.ratelimit import TokenBucket
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.hub import (
    CLOSE_FORBIDDEN,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TIMEOUT,
    CLOSE_UNAUTHORIZED,
    Hub,
)
from voice_server.signaling.messages import (
    MAX_MESSAGE_BYTES,
    ClientAnswer,
    ClientEmergency,
    ClientIceRestart,
    ClientJoin,
    ClientLeave,
    ClientMessage,
    ClientMonitor,
    ClientPing,
    ClientRefresh,
    ClientRoute,
    ClientStats,
    ClientTalkTarget,
    ClientUnmonitor,
    ServerError,
    ServerPong,
    encode,
    parse_client_message,
)
from voice_server.signaling.sessions import Session

log = logging.getLogger(__name__)

_FATAL_CLOSE = {
    ErrorCode.TOKEN_MISSING: CLOSE_UNAUTHORIZED,
    ErrorCode.TOKEN_INVALID: CLOSE_UNAUTHORIZED,
    ErrorCode.TOKEN_EXPIRED: CLOSE_UNAUTHORIZED,
    ErrorCode.TOKEN_AUDIENCE: CLOSE_UNAUTHORIZED,
    ErrorCode.USER_DISABLED: CLOSE_FORBIDDEN,
    ErrorCode.USER_UNKNOWN: CLOSE_UNAUTHORIZED,
    ErrorCode.CHANNEL_FORBIDDEN: CLOSE_FORBIDDEN,
    ErrorCode.CHANNEL_NOT_FOUND: CLOSE_FORBIDDEN,
}
#: a join refused by the cluster: not fatal (the client joins again after a back-off), but the
#: socket closes with 1013 "try again later" so the next try is a new connection
_RETRY_CLOSE = {ErrorCode.CLUSTER_UNAVAILABLE, ErrorCode.NODE_DRAINING}
CLOSE_TRY_AGAIN = 1013
_MAX_ERRORS_BEFORE_JOIN = 5
#: messages read but not yet handled, at most; more are dropped like a rate limit's excess
_MAX_UNHANDLED = 64


class Connection:
    """One WebSocket's outgoing side: a bounded queue drained by a writer task."""

    def __init__(self, ws: WebSocket, capacity: int) -> None:
        self._ws = ws
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(capacity)
        self._close: tuple[int, str] | None = None
        self.closed = asyncio.Event()

    def send(self, text: str) -> bool:
        if self._close is not None:
            return True  # closing: drop quietly, the client will resume and resync
        try:
            self._queue.put_nowait(text)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, code: int, reason: str = "") -> None:
        if self._close is None:
            self._close = (code, reason)
            # make room for the sentinel so the writer wakes up even when the queue is full
            while self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def run_writer(self) -> None:
        try:
            while True:
                text = await self._queue.get()
                if text is None:
                    break
                await self._ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass
        finally:
            code, reason = self._close or (CLOSE_NORMAL, "")
            if self._ws.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(Exception):
                    await self._ws.close(code, reason)
            self.closed.set()


async def _receive_text(ws: WebSocket) -> str | bytes | None:
    """Next message, or None once the peer has gone."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is not None:
        return str(text)
    data = message.get("bytes")
    return bytes(data) if data is not None else b""


class _Rejected(Exception):
    pass


async def serve_signaling(
    ws: WebSocket, hub: Hub, *, join_timeout: float, rate: float, burst: int, queue_size: int
) -> None:
    """Serve one signaling socket: a reader task receives, rate-limits and parses, and answers
    ``ping`` at once while joined; every other message is handled here, in order.

    Clients call a connection dead after 5 s without any message (they ping every 2 s), so a
    ``pong`` never waits behind a message whose handling is slow (a database check in a worker
    thread, an emergency): the reader answers it while that handling is still under way.
    """
    await ws.accept()
    hub.counters.connections += 1
    conn = Connection(ws, queue_size)
    writer = asyncio.create_task(conn.run_writer(), name="signaling-writer")
    bucket = TokenBucket(rate, burst, time.monotonic())
    last_limit_reply = 0.0
    session: Session | None = None
    errors_before_join = 0
    deadline = time.monotonic() + join_timeout
    # read but not yet handled: a message or its parse error; None once the peer has gone
    inbox: asyncio.Queue[ClientMessage | ProtocolError | None] = asyncio.Queue()

    def reply_error(err: ProtocolError, fatal: bool = False) -> None:
        hub.counters.errors[err.code.value] += 1
        conn.send(
            encode(ServerError(code=err.code, message=err.message, id=err.request_id, fatal=fatal))
        )

    def rate_limited(now: float) -> None:
        nonlocal last_limit_reply
        hub.counters.rate_limited += 1
        if now - last_limit_reply >= 1.0:
            last_limit_reply = now
            reply_error(ProtocolError(ErrorCode.RATE_LIMITED, "too many messages"))

    async def read() -> None:
        try:
            while (raw := await _receive_text(ws)) is not None:
                now = time.monotonic()
                # the bucket bounds a ping storm too; the inbox bound, a client outrunning a
                # slow handler (the one place left over is for the end)
                if not bucket.allow(now) or inbox.qsize() >= _MAX_UNHANDLED:
                    rate_limited(now)
                    continue
                try:
                    msg = _parse(raw)
                except ProtocolError as err:
                    inbox.put_nowait(err)
                    continue
                hub.counters.messages[msg.type] += 1
                if isinstance(msg, ClientPing) and session is not None:
                    conn.send(encode(ServerPong(id=msg.id, server_time=time.time())))
                else:
                    inbox.put_nowait(msg)
        except WebSocketDisconnect:
            pass
        finally:
            inbox.put_nowait(None)

    reader = asyncio.create_task(read(), name="signaling-reader")
    try:
        while not conn.closed.is_set():
            try:
                if session is None:
                    remaining = deadline - time.monotonic()
                    item = await asyncio.wait_for(inbox.get(), max(remaining, 0.001))
                else:
                    item = await inbox.get()
            except TimeoutError:
                reply_error(
                    ProtocolError(ErrorCode.JOIN_TIMEOUT, "no join received in time"), fatal=True
                )
                conn.close(CLOSE_TIMEOUT, "join timeout")
                break
            if item is None:  # the peer has gone, or the reader failed (raised here)
                if reader.done() and not reader.cancelled():
                    reader.result()
                break
            try:
                if isinstance(item, ProtocolError):
                    raise item
                if session is None:
                    session = await _handle_first(hub, conn, item)
                else:
                    session = await _handle(hub, conn, session, item)
                    if session is None:  # left: a new join may follow on this socket
                        deadline = time.monotonic() + join_timeout
            except ProtocolError as err:
                fatal = session is None and err.code in _FATAL_CLOSE
                reply_error(err, fatal=fatal)
                if fatal:
                    conn.close(_FATAL_CLOSE[err.code], err.code.value)
                    break
                if session is None and err.code in _RETRY_CLOSE:
                    conn.close(CLOSE_TRY_AGAIN, err.code.value)
                    break
                if session is None:
                    errors_before_join += 1
                    if errors_before_join >= _MAX_ERRORS_BEFORE_JOIN:
                        conn.close(CLOSE_POLICY, "no valid join")
                        break
    except Exception:
        log.exception("signaling connection failed")
        conn.close(1011, "internal error")
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader
        if session is not None:
            hub.detach(session, conn)
        conn.close(CLOSE_NORMAL)
        with contextlib.suppress(asyncio.CancelledError):
            await writer


def _parse(raw: str | bytes) -> ClientMessage:
    if isinstance(raw, bytes):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ProtocolError(ErrorCode.TOO_LARGE, "message larger than 64 KiB")
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary messages are not accepted")
    return parse_client_message(raw)


async def _handle_first(hub: Hub, conn: Connection, msg: ClientMessage) -> Session | None:
    if not isinstance(msg, ClientJoin):
        raise ProtocolError(
            ErrorCode.NOT_JOINED, "the first message must be join", request_id=msg.id
        )
    try:
        verified = await asyncio.to_thread(hub.verify_join, msg.token, msg.channel)
    except ProtocolError as err:
        err.request_id = msg.id
        raise
    await hub.admit(msg, verified)  # the cluster's word (nothing set up when refused)
    return hub.join(conn, msg, verified)


async def _handle(
    hub: Hub, conn: Connection, session: Session, msg: ClientMessage
) -> Session | None:
    if isinstance(msg, ClientPing):
        conn.send(encode(ServerPong(id=msg.id, server_time=time.time())))
    elif isinstance(msg, ClientAnswer):
        try:
            hub.answer(session, msg.sdp, msg.revision)
        except ProtocolError as err:
            err.request_id = msg.id
            raise
    elif isinstance(msg, ClientRoute):
        route = await asyncio.to_thread(hub.verify_route, session, msg)
        hub.set_route(session, route, msg.id)
    elif isinstance(msg, ClientMonitor):
        await asyncio.to_thread(hub.verify_console, session, msg.channels, msg.id)
        hub.monitor(session, msg.channels, add=True, request_id=msg.id)
    elif isinstance(msg, ClientUnmonitor):  # no check: one may always stop hearing
        hub.monitor(session, msg.channels, add=False, request_id=msg.id)
    elif isinstance(msg, ClientTalkTarget):
        if msg.channels is not None and msg.user is not None:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, "name channels or a user, not both", request_id=msg.id
            )
        supervised = await asyncio.to_thread(
            hub.verify_console, session, msg.channels or [], msg.id
        )
        hub.set_talk_target(session, msg.channels, msg.user, supervised, msg.id)
    elif isinstance(msg, ClientStats):
        hub.stats(session, msg)
    elif isinstance(msg, ClientEmergency):
        if hub.emergency is None:
            raise ProtocolError(
                ErrorCode.EMERGENCY_UNAVAILABLE, "this server keeps no alerts", request_id=msg.id
            )
        await hub.emergency.handle(session, msg)
    elif isinstance(msg, ClientIceRestart):
        hub.ice_restart(session, msg.id)
    elif isinstance(msg, ClientRefresh):
        principal = await asyncio.to_thread(hub.verify_refresh, session, msg)
        hub.refresh(session, principal, msg.id)
    elif isinstance(msg, ClientLeave):
        hub.leave(session, msg.id)
        return None  # the socket may join again (e.g. to switch channel)
    elif isinstance(msg, ClientJoin):
        raise ProtocolError(
            ErrorCode.ALREADY_JOINED, "leave before joining again", request_id=msg.id
        )
    return session
