"""Opening Redis clients (``redis.asyncio``, the ``[cluster]`` extra, imported here only: a
deployment without a Redis URL never loads it), and the one error the cluster layer raises
when Redis cannot be reached."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["ClusterUnavailable", "connection_errors", "open_client"]

CONNECT_TIMEOUT_S = 1.0
COMMAND_TIMEOUT_S = 2.0


class ClusterUnavailable(Exception):
    """Redis could not be reached or did not answer in time (joins fail fast with
    ``cluster_unavailable``; media never waits on it)."""


def open_client(
    url: str, *, command_timeout_s: float = COMMAND_TIMEOUT_S, retries: int = 1
) -> Redis:
    """A client for ``url`` (``redis://host:port/db``, ``rediss://`` for TLS). Connections are
    made on first use; a command waits at most ``command_timeout_s`` for its answer and is sent
    again at most ``retries`` times on a new connection after a connection error (one: a
    pooled connection that died with a restarted Redis costs nothing). The loops that keep a
    connection open (inbox reader, event subscriber) ask for 0: they must see every loss."""
    try:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise RuntimeError(
            "a Redis URL needs the cluster extra: pip install 'voice-server[cluster]'"
        ) from exc
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=command_timeout_s,
        decode_responses=True,
        retry_on_timeout=False,
        retry=Retry(NoBackoff(), retries),
    )
    return client


def connection_errors() -> tuple[type[BaseException], ...]:
    """What a lost or silent Redis raises (redis-py's errors and the socket's own)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError, OSError)


def cancelled_meanwhile() -> bool:
    """Whether the running task has been asked to stop although what it awaited ended in a
    connection error: redis-py's timeouts can turn a cancellation into a ``TimeoutError``, and a
    reconnect loop that retried it would never stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def abandoned_on_cancel(awaitable: Any) -> Any:
    """Await a Redis call so that cancelling the caller always ends the caller at once: the call
    runs as its own task, cancelled and left behind when the caller is (redis-py's clean-up of a
    read cancelled after a Redis restart was seen to await forever, holding a stopping loop)."""
    inner = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        inner.cancel()
        inner.add_done_callback(_retrieve)
        raise


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # read, so that asyncio does not log it as never retrieved


async def guarded(awaitable: Any) -> Any:
    """Await a Redis call; a connection failure becomes :class:`ClusterUnavailable`."""
    try:
        return await awaitable
    except connection_errors() as exc:
        raise ClusterUnavailable(str(exc) or type(exc).__name__) from exc
