"""The signaling endpoint's reader and handler, with a fake socket and a hub whose checks can be
held: a ``ping`` is answered while a slow message is still being handled, and the rate limit
tolerates a client's 2 s heartbeat but still bounds a storm."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from starlette.websockets import WebSocketState

from voice_server.config import Config
from voice_server.metrics import SignalingCounters
from voice_server.ratelimit import TokenBucket
from voice_server.signaling.endpoint import CLOSE_TRY_AGAIN, serve_signaling
from voice_server.signaling.errors import ErrorCode, ProtocolError


class FakeSocket:
    """What serve_signaling uses of a Starlette WebSocket: messages in, texts out."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.application_state = WebSocketState.CONNECTED
        self.close_code: int | None = None

    def push(self, **msg: Any) -> None:
        msg.setdefault("v", 1)
        self.incoming.put_nowait({"type": "websocket.receive", "text": json.dumps(msg)})

    def hang_up(self) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": 1000})

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))
        self.changed.set()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.application_state = WebSocketState.DISCONNECTED
        self.close_code = code

    async def sent_one(self, mtype: str, **match: Any) -> dict[str, Any]:
        while True:
            for msg in self.sent:
                if msg["type"] == mtype and all(msg.get(k) == v for k, v in match.items()):
                    return msg
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


class HeldHub:
    """A hub whose route check (a worker thread, as the real one's database look-up) waits
    until the test lets it go."""

    def __init__(self) -> None:
        self.counters = SignalingCounters()
        self.release = threading.Event()
        self.checking = threading.Event()
        self.detached: list[object] = []
        self.conn: Any = None
        self.refusal: ErrorCode | None = None  # the cluster's answer to a join (None: admitted)
        self.joins = 0

    def verify_join(self, token: str, channel: str) -> str:
        return "verified"

    async def admit(self, msg: Any, verified: str) -> None:
        if self.refusal is not None:
            raise ProtocolError(self.refusal, "refused", request_id=msg.id)

    def join(self, conn: Any, msg: Any, verified: str) -> object:
        self.joins += 1
        self.conn = conn
        conn.send(json.dumps({"type": "joined", "id": msg.id}))
        return object()

    def verify_route(self, session: object, msg: Any) -> str:
        self.checking.set()
        assert self.release.wait(10)
        return "route"

    def set_route(self, session: object, route: str, request_id: str | None) -> None:
        pass

    def leave(self, session: object, request_id: str | None) -> None:
        self.conn.send(json.dumps({"type": "left", "id": request_id}))

    def detach(self, session: object, conn: Any) -> None:
        self.detached.append(session)


async def test_a_ping_is_answered_while_a_slow_message_is_still_being_handled() -> None:
    ws, hub = FakeSocket(), HeldHub()
    served = asyncio.create_task(
        serve_signaling(ws, hub, join_timeout=10, rate=20, burst=50, queue_size=64)  # type: ignore[arg-type]
    )
    ws.push(type="join", token="t", channel="ops", device_id="d", id="j")
    await ws.sent_one("joined")
    ws.push(type="route", sends=["ops"], hears=["ops", "hq"], id="r")
    assert await asyncio.to_thread(hub.checking.wait, 10)
    ws.push(type="ping", id="p1")
    ws.push(type="leave", id="bye")  # queued behind the route, in order
    pong = await ws.sent_one("pong", id="p1")
    assert isinstance(pong["server_time"], float)
    assert hub.checking.is_set() and not hub.release.is_set()  # the route is still being checked
    hub.release.set()
    await ws.sent_one("left", id="bye")
    ws.push(type="ping", id="p2")  # after leave: not joined any more
    await ws.sent_one("error", code="not_joined")
    ws.hang_up()
    await asyncio.wait_for(served, 10)
    assert ws.types().count("pong") == 1 and not hub.detached  # left before hanging up
    assert hub.counters.messages["ping"] == 2 and hub.counters.messages["route"] == 1


async def test_the_end_of_the_socket_ends_the_connection_with_messages_still_queued() -> None:
    ws, hub = FakeSocket(), HeldHub()
    served = asyncio.create_task(
        serve_signaling(ws, hub, join_timeout=10, rate=20, burst=50, queue_size=64)  # type: ignore[arg-type]
    )
    ws.push(type="join", token="t", channel="ops", device_id="d")
    await ws.sent_one("joined")
    ws.push(type="route", sends=["ops"], hears=["ops"])
    ws.push(type="leave")
    ws.hang_up()
    assert await asyncio.to_thread(hub.checking.wait, 10)
    hub.release.set()
    await asyncio.wait_for(served, 10)
    assert not hub.detached  # the queued leave was handled before the end


async def test_a_join_the_cluster_refuses_sets_nothing_up_and_closes_with_try_again() -> None:
    for code in (ErrorCode.CLUSTER_UNAVAILABLE, ErrorCode.NODE_DRAINING):
        ws, hub = FakeSocket(), HeldHub()
        hub.refusal = code
        served = asyncio.create_task(
            serve_signaling(ws, hub, join_timeout=10, rate=20, burst=50, queue_size=64)  # type: ignore[arg-type]
        )
        ws.push(type="join", token="t", channel="ops", device_id="d", id="j")
        err = await ws.sent_one("error")
        assert (err["code"], err["fatal"], err["id"]) == (code.value, False, "j")
        await asyncio.wait_for(served, 10)  # the server ends the socket: the client retries
        assert ws.close_code == CLOSE_TRY_AGAIN == 1013
        assert hub.joins == 0 and hub.counters.errors[code.value] == 1


def test_a_ping_every_2_s_is_never_rate_limited_and_a_storm_is_bounded() -> None:
    config = Config()
    rate, burst = config.rate_per_second, config.rate_burst
    bucket = TokenBucket(rate, burst, 0.0)
    # an hour of a busy client: a ping every 2 s, stats every 5 s, a few requests every second
    sends = sorted(
        [i * 2.0 for i in range(1800)] + [i * 5.0 for i in range(720)]
        + [i * 1.0 + 0.5 for i in range(3600) for _ in range(3)]
    )  # fmt: skip
    assert all(bucket.allow(t) for t in sends)
    # a bad client's storm: 10,000 pings within one second get at most the burst and a second
    storm = TokenBucket(rate, burst, 0.0)
    answered = sum(storm.allow(i / 10_000) for i in range(10_000))
    assert answered <= burst + rate
