"""PostgreSQL notifications for a process: one connection LISTENing on the channels asked for,
in a thread of its own, calling each channel's callbacks (from that thread) when a NOTIFY
arrives. A lost connection is made again (0.5 s doubling to 5 s) and every callback is then
called once, as a notification may have been missed meanwhile; the callers keep polling, more
slowly, as a fallback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from voice_server.store.pg import connect

__all__ = ["PgNotifications"]

log = logging.getLogger(__name__)
CHECK_SECONDS = 0.5  # how soon stop() is seen


class PgNotifications:
    def __init__(self, url: str) -> None:
        self.url = url
        self._callbacks: dict[str, list[Callable[[], None]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.received = 0
        self.reconnects = 0

    def on(self, channel: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the listener's thread) on each NOTIFY of ``channel``; before
        :meth:`start`."""
        if not channel.isidentifier():
            raise ValueError(f"bad channel name {channel!r}")
        self._callbacks.setdefault(channel, []).append(callback)

    def start(self) -> None:
        if self._thread is None and self._callbacks:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _call(self, channel: str) -> None:
        for callback in self._callbacks.get(channel, ()):
            try:
                callback()
            except Exception:
                log.exception("notification callback failed", extra={"channel": channel})

    def _run(self) -> None:
        delay = 0.5
        first = True
        while not self._stop.is_set():
            try:
                conn = connect(self.url)
            except Exception as exc:
                log.warning("cannot LISTEN (polling meanwhile): %s", str(exc).splitlines()[0])
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                for channel in self._callbacks:
                    conn.execute(f"LISTEN {channel}")
                delay = 0.5
                if not first:  # anything sent while the connection was away
                    self.reconnects += 1
                    for channel in self._callbacks:
                        self._call(channel)
                first = False
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=CHECK_SECONDS):
                        self.received += 1
                        self._call(note.channel)
            except Exception as exc:
                log.warning("LISTEN connection lost (again soon): %s", str(exc).splitlines()[0])
                self._stop.wait(delay)
            finally:
                conn.close()
