"""Opening Redis clients (``redis.asyncio``, the ``[cluster]`` extra, imported here only: a
deployment without a Redis URL never loads it), and the one error the cluster layer raises
when Redis cannot be reached."""

from __future__ import annotations

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


async def guarded(awaitable: Any) -> Any:
    """Await a Redis call; a connection failure becomes :class:`ClusterUnavailable`."""
    try:
        return await awaitable
    except connection_errors() as exc:
        raise ClusterUnavailable(str(exc) or type(exc).__name__) from exc
