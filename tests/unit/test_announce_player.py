"""The announcement player against a fake stage: a routine announcement waits for a free slot
(and gives up after its deadline), an urgent one starts at once and cuts in."""

from __future__ import annotations

import asyncio
from typing import Any

from voice_server.announce.player import play
from voice_server.announce.speech import Clip
from voice_server.media.route import Route

CLIP = Clip(tuple(b"\xf8" for _ in range(12)), tuple(40 for _ in range(12)), b"")


class FakeSource:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, opus: bytes, *, level: int) -> None:
        self.sent += 1


class Stage:
    def __init__(self, *, free: bool, preemptible: bool = True) -> None:
        self.free = free
        self.preemptible = preemptible
        self.attached: list[tuple[str, Route]] = []
        self.source: FakeSource | None = None
        self.listeners = {"ann", "bob"}

    def attach_source(self, source_id: str, route: Route, *, logged: bool = True) -> Any:
        assert not logged and route.hears == ()
        self.attached.append((source_id, route))
        self.source = FakeSource()
        return self.source

    def detach_source(self, source_id: str) -> None:
        pass

    def slot_free(self, channel: str) -> bool:
        return self.free

    def holds_slot(self, session_id: str, channel: str) -> bool:
        level = self.attached[-1][1].priority
        return self.free or (level >= 2 and self.preemptible)

    def listening(self, channel: str) -> set[str]:
        return self.listeners


def test_routine_waits_for_a_free_slot_then_plays() -> None:
    async def run() -> None:
        stage = Stage(free=False)
        task = asyncio.create_task(play(stage, "s", "a", CLIP, level=1, urgent=False))
        await asyncio.sleep(0.3)
        assert stage.attached == []  # waiting: nothing sent, nothing told
        stage.free = True
        out = await asyncio.wait_for(task, 20)
        assert out.status == "played" and stage.source is not None and stage.source.sent == 12
        assert out.tally is not None and out.tally.fractions(["cy"])["ann"] == 1.0
        assert stage.attached == [("s", Route(("a",), (), priority=1))]

    asyncio.run(run())


def test_routine_gives_up_after_its_deadline() -> None:
    stage = Stage(free=False)
    out = asyncio.run(play(stage, "s", "a", CLIP, level=1, urgent=False, wait_seconds=0.2))
    assert out.status == "slot_timeout" and stage.attached == []


def test_urgent_cuts_in_at_once() -> None:
    stage = Stage(free=False)
    out = asyncio.run(play(stage, "s", "a", CLIP, level=2, urgent=True, wait_seconds=0.2))
    assert out.status == "played" and len(stage.attached) == 1


def test_urgent_finding_only_urgent_holders_waits_like_routine() -> None:
    stage = Stage(free=False, preemptible=False)
    out = asyncio.run(play(stage, "s", "a", CLIP, level=2, urgent=True, wait_seconds=0.2))
    assert out.status == "slot_timeout" and len(stage.attached) == 1  # one try, stopped early
    assert stage.source is not None and stage.source.sent == 9
