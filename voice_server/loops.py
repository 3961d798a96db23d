"""The event loop a process of ours runs on: uvloop where it is installed, asyncio's own otherwise.

``serve`` runs on uvicorn, which picks uvloop when it is installed (``uvicorn[standard]``), so a
single-process server forwards media on uvloop. A media worker (``serve --workers N``) and a load
generator process start their own loop: they take the same one, so that one worker and two are
compared on the same loop (uvloop's wake-up and datagram path costs about half of asyncio's
selector loop per packet here: README "Several media workers").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["loop_factory"]


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when importable, else None (``asyncio.Runner``'s default)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
