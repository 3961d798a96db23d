"""The dashboard sockets (alert events, live view) answer a page's heartbeat ping with pong, and
a ping storm gets no more answers than the limit: a fake socket, no server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from voice_server.web import events_ws, live


class Scripted:
    """Hands out ``incoming`` texts, then a disconnect; keeps what is sent."""

    def __init__(self, incoming: list[str]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    async def receive_text(self) -> str:
        if not self.incoming:
            raise WebSocketDisconnect(1000)
        return self.incoming.pop(0)

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


@pytest.mark.parametrize("read", [live._drain, events_ws._read], ids=["live", "events"])
async def test_a_ping_is_answered_and_a_storm_is_bounded(read: Any) -> None:
    one = Scripted(['{"type": "ping"}'])
    await read(one)
    assert one.sent == [{"type": "pong"}]
    storm = Scripted(['{"type": "ping"}'] * 1000)
    started = time.monotonic()
    await read(storm)
    elapsed = time.monotonic() - started
    assert storm.sent and all(m == {"type": "pong"} for m in storm.sent)
    assert len(storm.sent) <= live.PING_BURST + live.PING_RATE * elapsed + 1


def test_a_page_heartbeat_is_within_the_limit() -> None:
    bucket = live.ping_limit()
    start = time.monotonic()
    assert all(bucket.allow(start + 2.0 * i) for i in range(1800))  # an hour, every 2 s
