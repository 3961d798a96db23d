"""A media worker process (``serve --workers N``): one media plane on ``media_port + i``.

Started by the parent (:mod:`voice_server.workers.pool`) with one end of a ``SOCK_SEQPACKET``
socketpair as ``--control-fd``. The first record is the parent's ``hello`` (its index,
incarnation, ports, the relay key and every worker's relay address); the worker answers
``ready`` with the ports it bound, then serves the parent's commands in order (the hub's
``MediaPort`` calls, each answered by a ``reply`` with its ``id``) and sends events: talk events,
lost transports, the packets of the bursts it taps, the channels it has listeners of, and its
relay counters every second. The control socket's end (the parent died) ends the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from voice_server.logs import setup_logging
from voice_server.loops import loop_factory
from voice_server.media.plane import MediaPlane, Renegotiation
from voice_server.media.relay import WorkerRelay
from voice_server.workers.control import (
    b64,
    decode,
    encode,
    route_dict,
    route_of,
    tap_packets,
    unb64,
)

log = logging.getLogger(__name__)

STATS_SECONDS = 1.0
#: tap packets wait at most this long to go to the parent together (one record, one wake-up of
#: the parent per batch, not per packet; the spool and the transcriber are not in a hurry) ...
TAP_FLUSH_SECONDS = 0.1
#: ... or until this many bytes are waiting
TAP_FLUSH_BYTES = 32 * 1024


class _Events:
    """Talk events to the parent: of the channels this worker arbitrates (owns, or carries
    alone), for talkers here and talkers relayed from other workers alike."""

    def __init__(self, worker: MediaWorker) -> None:
        self._w = worker

    def _tell(self, op: str, session_id: str, **fields: Any) -> None:
        self._w.send(encode(op, session=session_id, **fields))

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self._tell("talk_started", session_id, channel=channel, slot=slot)

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self._tell("talk_stopped", session_id, channel=channel, slot=slot)

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self._tell("slot_busy", session_id, channel=channel, slots=slots)

    def preempted(self, session_id: str, channel: str, slot: int, by: str) -> None:
        self._tell("preempted", session_id, channel=channel, slot=slot, by=by)


class _Tap:
    """The call-log tap, in the parent: bursts by number, packets as binary records."""

    def __init__(self, worker: MediaWorker) -> None:
        self._w = worker
        self._next = 0

    def open(
        self, session_id: str, channel: str, preroll: list[tuple[bytes, int]], now_ms: int
    ) -> int:
        self._next = (self._next + 1) & 0xFFFFFFFF
        pre = [[b64(p), ms] for p, ms in preroll]
        self._w.send(
            encode(
                "tap_open",
                h=self._next,
                session=session_id,
                channel=channel,
                preroll=pre,
                now_ms=now_ms,
                clock_ms=time.perf_counter_ns() // 1_000_000,
            )
        )
        return self._next

    def packet(self, handle: int, plain: bytes) -> None:
        self._w.tap_packet(handle, plain)

    def close(self, handle: int) -> None:
        self._w.send(encode("tap_close", h=handle))


def _reoffer(r: Renegotiation | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"sdp": r.sdp, "revision": r.revision, "blocks": [[c, list(s)] for c, s in r.blocks]}


class MediaWorker:
    def __init__(self, control: socket.socket, hello: dict[str, Any]) -> None:
        self.control = control
        self.index = int(hello["index"])
        self.plane = MediaPlane(
            host=hello["host"],
            port=int(hello["port"]),
            tcp_port=hello["tcp_port"],
            announce_ip=hello["announce_ip"],
            slots=int(hello["slots"]),
            events=_Events(self),
            on_transport_lost=lambda sid: self.send(encode("media_lost", session=sid)),
            tap=_Tap(self) if hello["call_log"] else None,
            red=bool(hello["red"]),
        )
        self.relay = WorkerRelay(
            index=self.index,
            incarnation=int(hello["incarnation"]),
            key=unb64(hello["key_b64"]),
            plane=self.plane,
            slots=int(hello["slots"]),
        )
        self.plane.relay = self.relay
        self.plane.slot_ssrcs_of = self.relay.slot_ssrcs
        self.listening: frozenset[str] = frozenset()
        self.done = asyncio.Event()
        self.send_drops = 0
        #: tap packets waiting to go to the parent in one record, and their bytes
        self._taps: list[tuple[int, bytes]] = []
        self._tap_bytes = 0
        self._tap_timer: asyncio.TimerHandle | None = None

    def tap_packet(self, handle: int, plain: bytes) -> None:
        """A tapped packet for the parent, batched (sent before any other record, in order)."""
        if len(plain) > 0xFFFF:  # never from a UDP datagram
            self.send_drops += 1
            return
        self._taps.append((handle, plain))
        self._tap_bytes += len(plain) + 6
        if self._tap_bytes >= TAP_FLUSH_BYTES:
            self.flush_taps()
        elif self._tap_timer is None:
            loop = asyncio.get_running_loop()
            self._tap_timer = loop.call_later(TAP_FLUSH_SECONDS, self.flush_taps)

    def flush_taps(self) -> None:
        if self._tap_timer is not None:
            self._tap_timer.cancel()
            self._tap_timer = None
        if self._taps:
            record = tap_packets(self._taps)
            self._taps = []
            self._tap_bytes = 0
            self._send(record)

    def send(self, record: bytes) -> None:
        """A record for the parent, after the tap packets waiting (a burst's close after its
        packets)."""
        if self._taps:
            self.flush_taps()
        self._send(record)

    def _send(self, record: bytes) -> None:
        try:
            self.control.send(record)
        except BlockingIOError:
            self.send_drops += 1  # the parent is not reading: never block the media loop
        except OSError:
            self.done.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.plane.start()
        relay_port = self.relay.open()
        self.send(
            encode(
                "ready",
                port=self.plane.port,
                tcp_port=self.plane.tcp_port or 0,
                relay=[self.relay.host, relay_port],
            )
        )
        loop.add_reader(self.control.fileno(), self._readable)
        stats = asyncio.create_task(self._stats(), name="worker-stats")
        try:
            await self.done.wait()
        finally:
            stats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stats
            loop.remove_reader(self.control.fileno())
            self.relay.close()
            await self.plane.stop()
            self.flush_taps()

    async def _stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_SECONDS)
            self.relay.sweep()
            connected = [sid for sid in self.plane.links if self.plane.media_connected(sid)]
            times = os.times()
            self.send(
                encode(
                    "stats",
                    relay={**self.relay.stats(), "event_drops": self.send_drops},
                    added=self.relay.added.as_dict(),
                    links=len(self.plane.links),
                    connected=connected,
                    cpu_s=times.user + times.system,
                    families=[
                        [f.name, f.kind, f.help, [[x, dict(lb), v] for x, lb, v in f.samples]]
                        for f in self.plane.families()
                    ],
                )
            )

    def _readable(self) -> None:
        for _ in range(64):
            try:
                record = self.control.recv(1 << 20)
            except BlockingIOError:
                return
            except OSError:
                self.done.set()
                return
            if not record:  # the parent is gone
                self.done.set()
                return
            try:
                msg = decode(record)
            except ValueError:
                log.warning("bad control record from the parent")
                continue
            self._handle(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        op = msg["op"]
        if op == "stop":
            self.done.set()
            return
        if op == "peers":  # index -> [incarnation, relay host, relay port]
            peers = {int(k): v for k, v in msg["peers"].items()}
            self.relay.peers.clear()
            self.relay.peers.update({i: int(v[0]) for i, v in peers.items()})
            self.relay.addresses = {i: (str(v[1]), int(v[2])) for i, v in peers.items()}
            return
        if op == "listening":
            self.relay.targets.set_listening(int(msg["worker"]), msg["channels"])
            return
        if op == "source_packet":
            placed = self.plane.sources.get(msg["source"])
            sink = placed.peer.sink if placed is not None else None  # type: ignore[attr-defined]
            if sink is not None:
                sink(unb64(msg["rtp_b64"]), time.perf_counter_ns())
            return
        if op == "owner":
            owner = msg["worker"]
            self.relay.set_owner(
                msg["channel"], None if owner is None else int(owner), msg["epoch"]
            )
            return
        try:
            value = self._call(op, msg)
            reply: dict[str, Any] = {"value": value}
        except ValueError as exc:
            reply = {"error": str(exc)}
        self.send(encode("reply", id=msg.get("id"), **reply))
        self._report_listening()

    def _call(self, op: str, msg: dict[str, Any]) -> Any:
        plane = self.plane
        sid = msg.get("session", "")
        if op == "open":
            return plane.open(sid, route_of(msg["route"]))
        if op == "answer":
            return _reoffer(plane.answer(sid, msg["sdp"], msg.get("revision")))
        if op == "set_route":
            return _reoffer(plane.set_route(sid, route_of(msg["route"])))
        if op == "ice_restart":
            return _reoffer(plane.ice_restart(sid))
        if op == "close":
            plane.close(sid)
            return None
        if op == "attach_source":
            plane.attach_source(msg["source"], route_of(msg["route"]), logged=bool(msg["logged"]))
            return None
        if op == "detach_source":
            plane.detach_source(msg["source"])
            return None
        if op == "slot_free":
            return plane.slot_free(msg["channel"])
        if op == "holds_slot":
            return plane.holds_slot(sid, msg["channel"])
        if op == "has_transport":
            return plane.has_transport(sid)
        if op == "route_of":
            route = plane.route_of(sid)
            return route_dict(route) if route is not None else None
        if op == "blocks":
            return [[c, list(s)] for c, s in plane.blocks(sid)]
        raise ValueError(f"unknown command {op!r}")

    def _report_listening(self) -> None:
        now = frozenset(c for c, r in self.plane.routers.items() if r.consumers)
        if now != self.listening:
            self.listening = now
            self.send(encode("listening", worker=self.index, channels=sorted(now)))


async def _serve(fd: int) -> None:
    control = socket.socket(fileno=fd)
    control.setblocking(False)
    hello = decode(await asyncio.get_running_loop().sock_recv(control, 1 << 20))
    if hello.get("op") != "hello":
        raise SystemExit("media worker: no hello from the parent")
    setup_logging(hello.get("log_level", "info"))
    index = int(hello["index"])

    def tag(record: logging.LogRecord) -> bool:  # every line says which worker wrote it
        record.worker = index
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
    await MediaWorker(control, hello).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voice-server media worker")
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory()) as r:
        r.run(_serve(args.control_fd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
