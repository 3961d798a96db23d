"""The server's end of the transcriber link: authenticates the sidecar and streams live bursts.

Implements :class:`~voice_server.transcribe.tap.LiveSink`. The tap appends to one bounded deque
(never awaits); a sender task drains it every 20 ms into text (burst start/end) and binary
(packets) frames. A slow or absent sidecar never slows the voice: past ``queue_limit`` items
the bursts in the queue lose their live stream (counted) and the sidecar transcribes them from
the spool instead. Several transcriber workers may be linked at once (sidecars on several
machines sharing a PostgreSQL job queue): each has its own queue and sender, and a new live burst
goes to the least loaded one (fewest live bursts, then the shortest queue); its packets and end
follow it there. A worker that goes away loses only its own live bursts (the spool has them).

Authentication: the server sends ``challenge`` {nonce}; the sidecar answers ``hello`` with
``mac`` = HMAC-SHA256(derive_key(deployment key, "transcription-link"), nonce) within 5 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from voice_server.identity.derived import LINK_PURPOSE, derive_key, mac_hex
from voice_server.metrics import Family
from voice_server.transcribe.protocol import (
    VERSION,
    LinkError,
    burst_end,
    burst_start,
    dumps,
    pack_packets,
    parse_json,
)
from voice_server.transcribe.tap import BurstHandle

__all__ = ["LinkHub"]

log = logging.getLogger(__name__)
AUTH_TIMEOUT = 5.0
SEND_INTERVAL = 0.02
MAX_BINARY = 60_000

Hook = Callable[[dict[str, Any]], None]


@dataclass(slots=True)
class LinkCounters:
    connections: int = 0
    auth_failures: int = 0
    disconnects: int = 0
    live_bursts: int = 0
    live_lost: int = 0
    queue_drops: int = 0
    partials: int = 0
    commits: int = 0
    bad_messages: int = 0


Item = tuple[int, BurstHandle, bytes | list[bytes] | None]


class _Conn:
    def __init__(self, ws: WebSocket, info: dict[str, Any]) -> None:
        self.ws = ws
        self.info = info
        self.closed = asyncio.Event()
        self.queue: deque[Item] = deque()
        self.live: dict[int, BurstHandle] = {}  # burst no -> handle streamed to this worker
        self.assigned = 0  # live bursts given to this worker so far (the tie-break)


class LinkHub:
    def __init__(self, key: bytes, *, queue_limit: int = 20_000) -> None:
        self._key = derive_key(key, LINK_PURPOSE)
        self.queue_limit = queue_limit  # items queued per linked worker
        self.counters = LinkCounters()
        self.on_partial: list[Hook] = []
        self.on_committed: list[Hook] = []
        self._conns: list[_Conn] = []
        self._owner: dict[int, _Conn] = {}  # burst no -> the worker it streams to

    # ------------------------------------------------------------------ LiveSink (event loop)
    @property
    def connected(self) -> bool:
        return bool(self._conns)

    @property
    def transcriber(self) -> dict[str, Any] | None:
        return self._conns[0].info if self._conns else None

    @property
    def transcribers(self) -> list[dict[str, Any]]:
        return [c.info for c in self._conns]

    def load(self) -> list[int]:
        """Live bursts streamed to each linked worker (in link order)."""
        return [len(c.live) for c in self._conns]

    def start(self, handle: BurstHandle, packets: list[bytes]) -> bool:
        open_conns = [c for c in self._conns if len(c.queue) < self.queue_limit]
        if not open_conns:
            return False
        conn = min(open_conns, key=lambda c: (len(c.live), len(c.queue), c.assigned))
        conn.assigned += 1
        conn.live[handle.no] = handle
        self._owner[handle.no] = conn
        self.counters.live_bursts += 1
        conn.queue.append((0, handle, packets))
        return True

    def packet(self, handle: BurstHandle, plain: bytes) -> None:
        conn = self._owner.get(handle.no)
        if conn is None:
            return
        if len(conn.queue) >= self.queue_limit:
            self.counters.queue_drops += 1
            self._lose(conn, handle)
            return
        conn.queue.append((1, handle, plain))

    def end(self, handle: BurstHandle) -> None:
        conn = self._owner.pop(handle.no, None)
        if conn is not None:
            conn.queue.append((2, handle, None))

    def _lose(self, conn: _Conn, handle: BurstHandle) -> None:
        if handle.live:
            handle.live = False
            self.counters.live_lost += 1
            conn.queue.append((2, handle, None))  # the sidecar drops it and uses the spool

    # ------------------------------------------------------------------ WebSocket
    async def serve(self, ws: WebSocket) -> None:
        await ws.accept()
        nonce = secrets.token_hex(16)
        try:
            await ws.send_text(dumps({"type": "challenge", "v": VERSION, "nonce": nonce}))
            text = await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT)
            hello = parse_json(text)
            mac = hello.get("mac")
            if hello.get("type") != "hello" or not isinstance(mac, str):
                raise LinkError("expected hello")
            if not hmac.compare_digest(mac, mac_hex(self._key, nonce)):
                raise LinkError("bad mac")
        except (TimeoutError, LinkError, WebSocketDisconnect, KeyError, RuntimeError) as exc:
            self.counters.auth_failures += 1
            log.warning("transcriber link refused", extra={"reason": str(exc) or "timeout"})
            with contextlib.suppress(Exception):
                await ws.close(4401, "unauthorized")
            return
        keys = ("model", "language", "client", "engine")
        info: dict[str, Any] = {k: str(hello.get(k, ""))[:200] for k in keys}
        info["partials"] = hello.get("partials") is not False  # Whisper: none
        conn = _Conn(ws, info)
        self._conns.append(conn)
        self.counters.connections += 1
        log.info("transcriber connected", extra=info)
        await ws.send_text(dumps({"type": "welcome", "v": VERSION}))
        sender = asyncio.create_task(self._send_forever(conn), name="link-sender")
        try:
            await self._receive(conn)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            if conn in self._conns:
                self._conns.remove(conn)
                self.counters.disconnects += 1
                self._drop_live(conn)
                log.info("transcriber disconnected", extra=info)

    def _drop_live(self, conn: _Conn) -> None:
        for no, handle in conn.live.items():
            handle.live = False
            if self._owner.get(no) is conn:
                del self._owner[no]
        conn.live.clear()
        conn.queue.clear()

    async def _receive(self, conn: _Conn) -> None:
        while True:
            try:
                text = await conn.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            try:
                msg = parse_json(text)
            except LinkError:
                self.counters.bad_messages += 1
                continue
            kind = msg["type"]
            hooks = (
                self.on_partial
                if kind == "partial"
                else self.on_committed
                if kind == "committed"
                else None
            )
            if kind == "partial":
                self.counters.partials += 1
            elif kind == "committed":
                self.counters.commits += 1
            for hook in hooks or ():
                try:
                    hook(msg)
                except Exception:
                    log.exception("transcription hook failed")

    async def _send_forever(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(SEND_INTERVAL)
            await self._flush(conn)

    async def _flush(self, conn: _Conn) -> None:
        queue = conn.queue
        records: list[tuple[int, bytes]] = []
        size = 0
        while queue:
            kind, handle, data = queue.popleft()
            if kind == 1:
                if handle.live:
                    assert isinstance(data, bytes)
                    records.append((handle.no, data))
                    size += len(data) + 6
                    if size > MAX_BINARY:
                        await conn.ws.send_bytes(pack_packets(records))
                        records, size = [], 0
                continue
            if records:
                await conn.ws.send_bytes(pack_packets(records))
                records, size = [], 0
            if kind == 0:
                await conn.ws.send_text(burst_start(handle.no, handle.meta))
                assert isinstance(data, list)
                if data:
                    await conn.ws.send_bytes(pack_packets([(handle.no, p) for p in data]))
            else:
                complete = handle.live
                conn.live.pop(handle.no, None)
                handle.live = False
                await conn.ws.send_text(
                    burst_end(
                        handle.no, handle.meta.id, complete=complete, ended_ms=handle.ended_ms
                    )
                )
        if records:
            await conn.ws.send_bytes(pack_packets(records))

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        c = self.counters
        fams: list[Family] = []  # link state: voice_transcription_link_up (monitor.py)
        for name, value, text in [
            ("link_connections", c.connections, "Transcriber links authenticated"),
            ("link_auth_failures", c.auth_failures, "Transcriber links refused"),
            ("live_bursts", c.live_bursts, "Bursts streamed live to the transcriber"),
            ("live_lost", c.live_lost, "Live streams given up (queue full): spool used"),
            ("link_queue_drops", c.queue_drops, "Packets not streamed live (queue full)"),
            ("partials", c.partials, "Partial results received"),
            ("commits", c.commits, "Utterances committed by the transcriber"),
        ]:
            fams.append(Family(f"voice_transcriber_{name}_total", "counter", text).add(value))
        fams.append(
            Family("voice_transcriber_links", "gauge", "Transcriber workers linked now").add(
                len(self._conns)
            )
        )
        per = Family(
            "voice_transcriber_link_live_bursts", "gauge", "Live bursts given to each linked worker"
        )
        for conn in self._conns:
            per.add(conn.assigned, worker=conn.info.get("client", "")[:80])
        fams.append(per)
        return fams
