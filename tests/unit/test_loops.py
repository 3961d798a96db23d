"""The loop our own processes start (media workers, load generator workers): uvloop, as uvicorn
picks for ``serve``, so one worker and several are compared on the same loop."""

from __future__ import annotations

import asyncio

import uvloop

from voice_server.loops import loop_factory


def test_loop_factory_is_uvloop_when_installed() -> None:
    factory = loop_factory()
    assert factory is not None
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(asyncio.sleep(0, result=7)) == 7
