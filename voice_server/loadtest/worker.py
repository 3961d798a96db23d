"""One generator worker process: its share of the simulated participants, on its own event loop.

The coordinator (:mod:`voice_server.loadtest.runner`) starts each worker with
:func:`worker_main` in a spawned process and talks to it over a ``multiprocessing`` pipe with
small dicts (commands in, events out). The worker says ``{"event": "ready"}`` once its
participants are built, then:

- ``{"cmd": "join", "t0_ns": T}``: connect every participant at ``T + join_at`` (``T`` on
  ``time.perf_counter_ns``, which is ``CLOCK_MONOTONIC`` on Linux and so the same clock in
  every process); answers ``{"event": "joined"}`` when all have connected or failed;
- ``{"cmd": "mark"}``: start of the measured window: resets the latency and pacer histograms,
  remembers each participant's per-stream counts; answers ``{"event": "marked", "totals": …}``;
- ``{"cmd": "snapshot"}``: answers ``{"event": "snapshot", …}`` with totals, histograms, the
  local UDP ports and one record per participant (see :func:`_record`);
- ``{"cmd": "stop"}``: every participant leaves and closes; answers ``{"event": "stopped"}``.

The worker is lean by construction: ``uvloop`` when installed, one pacing task, one receive
socket for all its participants (:class:`~voice_server.sim.shared_udp.SharedUdp`; or one epoll
for a socket each, :class:`~voice_server.sim.rxpoll.RxPoller`, with ``--rx poller``), each
participant on a pacing phase of its own, and ``RLIMIT_NOFILE`` raised for its WebSockets. It
runs at a lower CPU priority than the server (``nice`` +5 by default): on a machine that cannot
serve both, the generator falls behind, which its pacer measures and the report turns into
``valid: false``, instead of taking the CPU from the server and making it look slow. Once its
participants have joined, the worker freezes what the garbage collector has seen
(``gc.freeze``): a full collection over a thousand participants' objects stopped it for a second
at a time, and its catch-up bursts then overflowed the server's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import time
from multiprocessing.connection import Connection
from typing import Any

from voice_server.limits import raise_fd_limit
from voice_server.loadtest.plan import LoadPlan
from voice_server.loops import loop_factory
from voice_server.process_metrics import GC
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

__all__ = ["worker_main"]


def worker_main(conn: Connection, setup: dict[str, Any]) -> None:
    """Entry point of a worker process (see the module docstring)."""
    raise_fd_limit()
    GC.install()
    with contextlib.suppress(OSError):
        os.nice(int(setup.get("nice", 0)))
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(_Worker(conn, setup).run())


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}"[:200]


class _Worker:
    def __init__(self, conn: Connection, setup: dict[str, Any]) -> None:
        self.conn = conn
        self.within = float(setup.get("connect_within", 30.0))
        self.group = SimGroup(
            setup["url"],
            "",
            lambda _i: "",
            dtx=True,
            poller=bool(setup.get("poller", True)),
            shared=bool(setup.get("shared", False)),
            net=int(setup.get("net", 1)),
            phases=int(setup.get("phases", 20)),
        )
        self.specs: list[dict[str, Any]] = setup["participants"]
        self.people: list[SimParticipant] = [
            self.group.participant(s["token"], s["channel"], s["device_id"], talking=s["talker"])
            for s in self.specs
        ]
        for p in self.people:
            p.verify_every = int(setup.get("verify_every", 1))
        self.errors: dict[int, str] = {}
        self.marks: list[dict[int, int]] = [{} for _ in self.people]
        self.commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.joining: asyncio.Task[None] | None = None
        self.talk = setup.get("talk")  # {"talk_seconds", "pause_seconds"}: bursts with pauses
        self.pattern: asyncio.Task[None] | None = None

    def send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the coordinator has gone: nothing to tell
            self.conn.send(message)

    def _readable(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):
            message = {"cmd": "stop", "orphaned": True}
        self.commands.put_nowait(message)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._readable)
        self.send({"event": "ready"})
        try:
            while True:
                message = await self.commands.get()
                cmd = message.get("cmd")
                if cmd == "join":
                    t0 = int(message["t0_ns"])
                    self.joining = asyncio.create_task(self._join_all(t0))
                    if self.talk:
                        self.pattern = asyncio.create_task(self._talk_pattern(t0))
                elif cmd == "mark":
                    self.send({"event": "marked", "totals": self._mark()})
                elif cmd == "snapshot":
                    self.send({"event": "snapshot", **self._snapshot()})
                elif cmd == "stop":
                    await self._stop()
                    if not message.get("orphaned"):
                        self.send({"event": "stopped"})
                    return
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(self.conn.fileno())

    async def _join_all(self, t0_ns: int) -> None:
        await asyncio.gather(
            *(self._join(i, t0_ns + int(s["join_at"] * 1e9)) for i, s in enumerate(self.specs))
        )
        gc.collect()
        gc.freeze()  # later collections scan only what is new: no second-long pauses
        self.send({"event": "joined"})

    async def _join(self, i: int, at_ns: int) -> None:
        delay = (at_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            # a phase of its own, as an independent phone's 20 ms clock: in turn, the talkers
            # of one channel (joining one after another) all sent within the same 1-2 ms
            phase = random.Random(self.specs[i]["index"]).randrange(self.group.pacer.phases)
            await self.group.connect(self.people[i], self.within, phase)
        except Exception as exc:
            self.errors[i] = _error_text(exc)

    async def _talk_pattern(self, t0_ns: int) -> None:
        """Talkers talk and pause (see :meth:`LoadPlan.talking_at`), checked every 20 ms."""
        assert self.talk is not None
        plan = LoadPlan(1, 1, 1, 1.0, **self.talk)
        talkers = [
            (s["index"], p) for s, p in zip(self.specs, self.people, strict=True) if s["talker"]
        ]
        while True:
            seconds = (time.perf_counter_ns() - t0_ns) / 1e9
            for index, p in talkers:
                p.talking = plan.talking_at(index, seconds)
            await asyncio.sleep(0.02)

    def _mark(self) -> dict[str, int]:
        self.group.latency.reset()
        self.group.pacer.lateness.reset()
        GC.pauses.reset()
        for i, p in enumerate(self.people):
            self.marks[i] = {ssrc: s.received for ssrc, s in p.streams.items()}
        return self._totals()

    def _totals(self) -> dict[str, int]:
        totals = self.group.totals().as_dict()
        totals["late_ticks"] = self.group.pacer.late_ticks
        totals["reoffers"] = sum(p.reoffers for p in self.people)
        totals["ticks"] = self.group.pacer.ticks
        poller = self.group.poller
        totals["poller_drains"] = poller.drains if poller is not None else 0
        totals["poller_events"] = poller.events if poller is not None else 0
        shared = self.group.shared
        totals["shared_received"] = shared.received if shared is not None else 0
        totals["shared_unknown"] = shared.unknown if shared is not None else 0
        return totals

    def _record(self, i: int) -> dict[str, Any]:
        p = self.people[i]
        spec = self.specs[i]
        mark = self.marks[i]
        window = {ssrc: s.received - mark.get(ssrc, 0) for ssrc, s in p.streams.items()}
        return {
            "index": spec["index"],
            "channel": spec["channel"],
            "talker": spec["talker"],
            "joined": p.media_ready,
            "error": self.errors.get(i),
            "ws_open_ns": p.ws_open_ns,
            "offer_ns": p.offer_ns,
            "media_ns": p.connected_at_ns,
            "first_audio_ns": p.first_audio_ns,
            "sent": p.sent,
            "received": p.received,
            "bytes_sent": p.bytes_sent,
            "bytes_received": p.bytes_received,
            "lost": sum(s.lost for s in p.streams.values()),
            "expected": sum(s.expected for s in p.streams.values()),
            "jitter_ms": max((s.jitter_ms for s in p.streams.values()), default=None),
            "streams": len(p.streams),
            "window_received": sum(window.values()),
            "window_streams": sum(1 for n in window.values() if n > 0),
            "late_sends": p.late_sends,
            "socket_errors": p.socket_errors,
            "srtp_errors": p.srtp_errors,
            "messages": dict(p.messages),
            "signaling_closed": p.signaling_closed,
            "reoffers": p.reoffers,
        }

    def _snapshot(self) -> dict[str, Any]:
        return {
            "totals": self._totals(),
            "latency": self.group.latency.as_dict(),
            "lateness": self.group.pacer.lateness.as_dict(),
            "gc_pauses": GC.pauses.as_dict(),
            "jitter_ms": self.group.jitter_ms(),
            "ports": sorted(self.group.local_ports()),
            "media_port": next((p.offer.port for p in self.people if p.offer), None),
            # every server port its participants were offered (serve --workers N: one a worker)
            "media_ports": sorted({p.offer.port for p in self.people if p.offer}),
            "participants": [self._record(i) for i in range(len(self.people))],
        }

    async def _stop(self) -> None:
        for task in (self.joining, self.pattern):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.group.close()
