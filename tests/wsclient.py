"""A small signaling client for tests: records every message, waits for a given type."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class Peer:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self._cursor = 0

    @classmethod
    async def connect(cls, url: str, **kw: Any) -> Peer:
        return cls(await websockets.connect(url, max_size=2**20, **kw))

    async def send(self, **msg: Any) -> None:
        msg.setdefault("v", 1)
        await self.ws.send(json.dumps(msg))

    async def join(
        self, token: str, channel: str = "ops", device_id: str = "dev-1", **kw: Any
    ) -> dict[str, Any]:
        await self.send(type="join", token=token, channel=channel, device_id=device_id, **kw)
        return await self.expect("joined")

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        msg: dict[str, Any] = json.loads(raw)
        self.inbox.append(msg)
        return msg

    async def expect(self, mtype: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        """Next message of ``mtype`` (matching ``match`` fields), skipping others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for msg in self.inbox[self._cursor :]:
            self._cursor += 1
            if msg["type"] == mtype and all(msg.get(k) == v for k, v in match.items()):
                return msg
        while True:
            msg = await self.recv(max(deadline - loop.time(), 0.001))
            self._cursor = len(self.inbox)
            if msg["type"] == mtype and all(msg.get(k) == v for k, v in match.items()):
                return msg

    async def closed(self, timeout: float = 20.0) -> int | None:
        """Wait until the server closes the socket; return the close code."""
        try:
            while True:
                await self.recv(timeout)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None

    async def close(self) -> None:
        await self.ws.close()
