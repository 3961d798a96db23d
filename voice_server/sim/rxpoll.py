"""Many UDP sockets behind one epoll, so the event loop watches a single file descriptor.

A load generator holds a thousand sockets, each receiving ~100 datagrams a second. With one
``loop.add_reader`` per socket, every datagram costs the event loop a ready event, a callback
handle and a read loop that ends in ``BlockingIOError``. :class:`RxPoller` registers the
sockets with its own level-triggered ``select.epoll`` and the event loop watches only that
epoll's descriptor: on each wake-up it polls (without blocking) and calls each ready socket's
handler, which reads exactly one datagram; a socket with more queued is reported again by the
next poll. At most ``rounds`` polls run per wake-up so the pacer is never starved.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable

__all__ = ["RxPoller"]


class RxPoller:
    """One epoll for many sockets; ``add(fd, handler)`` with a handler reading one datagram."""

    def __init__(self, *, max_events: int = 1024, rounds: int = 16) -> None:
        self._ep = select.epoll()
        self._handlers: dict[int, Callable[[], None]] = {}
        self._max_events = max_events
        self._rounds = rounds
        self._loop: asyncio.AbstractEventLoop | None = None
        #: wake-ups of the event loop and datagram handler calls, for the generator's report
        self.wakeups = 0
        self.events = 0

    def start(self) -> None:
        """Watch the epoll from the running event loop."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._ep.fileno(), self._drain)

    def add(self, fd: int, handler: Callable[[], None]) -> None:
        self.start()
        self._handlers[fd] = handler
        self._ep.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except OSError:
                pass

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._ep.fileno())
            self._loop = None
        self._handlers.clear()
        self._ep.close()

    def __len__(self) -> int:
        return len(self._handlers)

    def _drain(self) -> None:
        poll = self._ep.poll
        handlers = self._handlers
        self.wakeups += 1
        for _ in range(self._rounds):
            events = poll(0, self._max_events)
            if not events:
                return
            self.events += len(events)
            for fd, _mask in events:
                handler = handlers.get(fd)
                if handler is not None:
                    handler()
