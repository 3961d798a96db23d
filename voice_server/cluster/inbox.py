"""A per-node inbox of control messages on a Redis stream, surviving short disconnects.

Senders ``XADD`` to the node's stream (capped at about ``maxlen`` entries). The node's
:class:`InboxReader` reads with a blocking ``XREAD`` from the last id it handled, so after a
lost connection it reconnects (with backoff) and resumes where it stopped: nothing sent while it
was away is missed as long as Redis kept it. When Redis itself restarted (its ``run_id``
changed) the stream is a new one whose ids may be lower than the last one read, so the reader
starts again from its beginning; messages already handled are recognised by uid and skipped.
A new reader starts at the end of the stream: messages to an earlier incarnation are not its.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from voice_server.cluster.backoff import Backoff
from voice_server.cluster.client import (
    abandoned_on_cancel,
    cancelled_meanwhile,
    connection_errors,
    guarded,
)
from voice_server.cluster.keys import Keys
from voice_server.cluster.messages import InboxMessage, SeenWindow

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["InboxReader", "send"]

log = logging.getLogger("voice_server.cluster.inbox")
DEFAULT_MAXLEN = 1000
Handler = Callable[[InboxMessage], Awaitable[None]]


async def send(
    client: Redis, keys: Keys, to_node: str, message: InboxMessage, maxlen: int = DEFAULT_MAXLEN
) -> str:
    """Append ``message`` to ``to_node``'s inbox: its stream id. Raises ClusterUnavailable."""
    entry_id = await guarded(
        client.xadd(keys.inbox(to_node), message.fields(), maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
    )
    return str(entry_id)


POLL_MS = 100  # how often an idle reader asks for new messages


class InboxReader:
    """Reads one node's inbox and hands each message to ``handler``, in order, once. ``client``
    is the reader's own (a blocking read holds its connection), its command timeout longer than
    ``block_ms``."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        node_id: str,
        handler: Handler,
        *,
        block_ms: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        self._client = client
        self._key = keys.inbox(node_id)
        self._handler = handler
        self._block_ms = block_ms
        self._backoff = backoff or Backoff()
        self._seen = SeenWindow(2 * DEFAULT_MAXLEN)
        self._run_id: str | None = None
        self.last_id: str | None = None  # None: not started (begin at the stream's end)
        self.reconnects = 0
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Read until cancelled; connection failures are retried forever."""
        errors = connection_errors()
        while True:
            try:
                await self._connect()
                while True:
                    await self._read_once()
            except errors as exc:
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                self.connected.clear()
                self.reconnects += 1
                delay = self._backoff.next()
                log.warning("cluster inbox=%s lost=%s retry_s=%.2f", self._key, exc, delay)
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        info = await abandoned_on_cancel(self._client.info("server"))
        run_id = str(info.get("run_id", ""))
        if self._run_id is not None and run_id != self._run_id and self.last_id is not None:
            log.warning("cluster inbox=%s redis restarted: reading the stream again", self._key)
            self.last_id = "0-0"
        self._run_id = run_id
        if self.last_id is None:
            tail = await abandoned_on_cancel(self._client.xrevrange(self._key, count=1))
            self.last_id = str(tail[0][0]) if tail else "0-0"
        self._backoff.reset()
        self.connected.set()

    async def _read_once(self) -> None:
        assert self.last_id is not None
        # polled, not a blocking XREAD: a task cancelled inside redis-py's blocking read after a
        # Redis restart was seen never to end (its clean-up awaited forever), while a
        # cancellation in the sleep between short reads always lands
        got: Any = await abandoned_on_cancel(
            self._client.xread({self._key: self.last_id}, count=100)
        )
        if not got:
            await asyncio.sleep(min(self._block_ms, POLL_MS) / 1000)
        for _stream, entries in got or []:
            for entry_id, fields in entries:
                self.last_id = str(entry_id)
                try:
                    message = InboxMessage.from_fields(self.last_id, fields)
                except ValueError as exc:
                    log.warning("cluster inbox=%s skipped=%s", self._key, exc)
                    continue
                if not self._seen.first_time(message.uid):
                    continue
                try:
                    await self._handler(message)
                except Exception:
                    log.exception("cluster inbox=%s handler failed on %s", self._key, entry_id)
