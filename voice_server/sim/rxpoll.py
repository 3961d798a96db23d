"""Many UDP sockets behind one epoll, and kernel receive timestamps.

A load generator holds a thousand sockets, each receiving ~100 datagrams a second. Woken for
every datagram, one process spends ~10 µs a packet here on wake-ups and event-loop callbacks
alone. :class:`RxPoller` keeps the sockets in its own level-triggered ``select.epoll``:

- *ticked* (the load generator): the owner calls :meth:`RxPoller.drain` on its own clock (the
  pacer's 5 ms tick), so each wake-up reads hundreds of datagrams; ~7 µs a packet instead of
  ~14 when woken per datagram;
- *immediate* (:meth:`RxPoller.set_immediate`): the event loop watches the epoll's descriptor
  and drains it as soon as anything is ready.

Either way a ready socket's handler reads one datagram (a socket with more queued is reported
again by the next poll), at most ``rounds`` polls per drain.

Reading late must not distort what is measured, so arrival times come from the kernel
(:mod:`voice_server.media.rxtime`, re-exported here): jitter and latency are those of the
network path, not of the generator's scheduling.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
from collections.abc import Callable
from typing import Any

from voice_server.media.rxtime import ANC_SIZE, SO_TIMESTAMPNS, arrival_ns, enable_timestamps

__all__ = [
    "ANC_SIZE",
    "SO_TIMESTAMPNS",
    "RxPoller",
    "arrival_ns",
    "enable_timestamps",
    "open_udp",
]


def open_udp(ip: str, port: int, rcvbuf: int) -> socket.socket:
    """A non-blocking UDP socket on loopback connected to ``(ip, port)``, with a receive buffer
    of ``rcvbuf`` bytes (as far as the kernel allows) and kernel receive timestamps."""
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        enable_timestamps(sock)
        sock.setblocking(False)
        sock.bind(("::1" if ":" in ip else "127.0.0.1", 0))
        sock.connect((ip, port))
    except OSError:
        sock.close()
        raise
    return sock


class RxPoller:
    """One epoll for many sockets; ``add(fd, handler)`` with a handler reading one datagram."""

    def __init__(self, *, max_events: int = 4096, rounds: int = 16) -> None:
        self._ep = select.epoll()
        self._handlers: dict[int, Callable[[], object]] = {}
        self._max_events = max_events
        self._rounds = rounds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._immediate = False
        #: drains and datagram handler calls, for the generator's report
        self.drains = 0
        self.events = 0

    def set_immediate(self, immediate: bool) -> None:
        """Drain as soon as anything is ready (True) or only when :meth:`drain` is called."""
        if immediate and not self._immediate:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._ep.fileno(), self.drain)
        elif not immediate and self._immediate and self._loop is not None:
            self._loop.remove_reader(self._ep.fileno())
        self._immediate = immediate

    @property
    def immediate(self) -> bool:
        return self._immediate

    def add(self, fd: int, handler: Callable[[], object]) -> None:
        self._handlers[fd] = handler
        self._ep.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except OSError:
                pass

    def close(self) -> None:
        if self._immediate and self._loop is not None:
            self._loop.remove_reader(self._ep.fileno())
        self._immediate = False
        self._handlers.clear()
        self._ep.close()

    def __len__(self) -> int:
        return len(self._handlers)

    def drain(self) -> None:
        """Read what is ready now (each ready socket's handler, ``rounds`` polls at most)."""
        poll = self._ep.poll
        handlers = self._handlers
        self.drains += 1
        for _ in range(self._rounds):
            events: Any = poll(0, self._max_events)
            if not events:
                return
            self.events += len(events)
            for fd, _mask in events:
                handler = handlers.get(fd)
                if handler is not None:
                    handler()
