"""The parent's side of ``serve --workers N``: N media worker processes behind the hub's
``MediaPort`` (README "Several processes on one machine").

The pool starts each worker (:mod:`voice_server.workers.media_worker`) with one end of a
``socketpair(AF_UNIX, SOCK_SEQPACKET)`` (only the two processes hold it), tells it its index,
incarnation, ports and the relay key, and places each new session on a worker
(:class:`~voice_server.workers.placement.Placement`). The hub's calls go to the session's worker
as commands answered in order; this step waits for each answer on the control socket (bounded by
``CALL_TIMEOUT``), while events that arrive meanwhile are queued and dispatched on the event
loop: talk events to the hub, lost transports, the bursts' packets to the call-log tap, each
worker's listener channels to every other worker (the relay's targets), relay counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import select
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from voice_server.config import Config
from voice_server.histogram import LatencyHistogram
from voice_server.media.plane import OPUS_PT, Renegotiation
from voice_server.media.relay_packet import KEY_BYTES
from voice_server.media.route import Route
from voice_server.media.router import TalkEvents, Tap
from voice_server.media.source import ServerSource
from voice_server.metrics import Family
from voice_server.workers.control import b64, decode, encode, route_dict, route_of, unb64
from voice_server.workers.ownership import Owner, Ownership
from voice_server.workers.placement import Placement
from voice_server.workers.ports import media_ports

log = logging.getLogger(__name__)

__all__ = ["CALL_TIMEOUT", "WorkerPool"]

#: the longest the parent's event loop waits for one command's answer: a worker that does not
#: answer in time is *stalled* (its commands fail at once, new sessions go elsewhere) until it
#: is heard again, or is replaced after SILENT_SECONDS
CALL_TIMEOUT = 1.0
#: a worker sends its stats every second: one silent this long gets no command (they fail at
#: once, counted) and no new session
QUIET_SECONDS = 2.5
#: ... and one silent this long has stopped answering: killed and replaced
SILENT_SECONDS = 5.0
START_TIMEOUT = 60.0
RECORD = 1 << 20
CONTROL_BUFFER = 4 * 1024 * 1024


class _Worker:
    def __init__(self, index: int, incarnation: int) -> None:
        self.index = index
        self.incarnation = incarnation
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.port = 0
        self.tcp_port = 0
        self.relay: dict[str, Any] = {}
        self.links = 0
        #: its sessions with connected media, as of its last stats record (every second)
        self.connected: frozenset[str] = frozenset()
        self.families: list[Any] = []  # its media plane's metric families, serialized
        self.cpu_s = 0.0  # its process's CPU seconds (user + system)
        self.added = LatencyHistogram()  # relay datagrams in: send -> receipt
        self.alive = False
        self.relay_address: list[Any] = []  # [host, port] of its relay socket
        self.bind: tuple[int, int | None] = (0, None)  # the UDP and ICE-TCP ports asked for
        self.restarts = 0
        self.heard = 0.0  # monotonic time of its last record
        #: a command went unanswered in CALL_TIMEOUT: nothing more is asked of it until it is
        #: heard again (cleared by its next record)
        self.stalled = False
        #: commands that failed without an answer: "timeout" (asked, unanswered in time),
        #: "unresponsive" (not asked: stalled or silent), "exited"
        self.call_failures = dict.fromkeys(("timeout", "unresponsive", "exited"), 0)


class WorkerPool:
    """N media workers as one media plane, for the hub."""

    def __init__(
        self,
        config: Config,
        *,
        events: TalkEvents,
        on_transport_lost: Callable[[str], None] | None = None,
        tap: Tap[Any] | None = None,
    ) -> None:
        self.config = config
        self.n = config.worker_count
        self.events = events
        self.on_transport_lost = on_transport_lost
        self.tap = tap
        self.placement = Placement(self.n, config.workers_placement)
        #: each channel's owner: the worker whose router arbitrates it, with its epoch
        self.ownership = Ownership()
        self.workers = [_Worker(i, 1) for i in range(self.n)]
        self.sessions: dict[str, tuple[int, str]] = {}  # session -> (worker, channel placed by)
        self.sources: dict[str, int] = {}  # server-side source -> the worker it plays on
        self._key = secrets.token_bytes(KEY_BYTES)
        self._listening: dict[int, list[str]] = {}
        self._bursts: dict[tuple[int, int], Any] = {}  # (worker, handle) -> the tap's handle
        self._pending: deque[tuple[int, dict[str, Any]]] = deque()
        self._next_id = 0
        self.call_timeouts = 0
        self.post_drops = 0  # one-way records to workers dropped (a full control socket)
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ports = media_ports(self.config.media_port, self.n)
        tcp = self.config.media_tcp_port
        tcp_ports: list[int | None]
        if tcp is None:  # ICE-TCP on each worker's UDP port number
            tcp_ports = [None] * self.n
        else:
            tcp_ports = [0] * self.n if tcp == 0 else list(media_ports(tcp, self.n))
        for w in self.workers:
            w.bind = (ports[w.index], tcp_ports[w.index])
            self._spawn(w)
        for w in self.workers:
            await self._ready(w)
        self._tell_peers()
        watchdog = self._loop.create_task(self._watch(), name="media-worker-watchdog")
        self._tasks.add(watchdog)
        log.info("media workers ready", extra={"ports": [w.port for w in self.workers]})

    async def _watch(self) -> None:
        """A worker silent for ``SILENT_SECONDS`` (stopped, wedged) is killed and replaced."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for w in self.workers:
                if w.alive and now - w.heard > SILENT_SECONDS:
                    log.error("media worker stopped answering", extra={"worker": w.index})
                    if w.proc is not None:
                        w.proc.kill()
                    self._lost(w)

    def _spawn(self, w: _Worker) -> None:
        port, tcp_port = w.bind
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (parent, child):  # room for a burst's tap records while the other is busy
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                with contextlib.suppress(OSError):  # capped by net.core.*mem_max: best effort
                    end.setsockopt(socket.SOL_SOCKET, option, CONTROL_BUFFER)
        cmd = [sys.executable, "-m", "voice_server.workers.media_worker"]
        w.proc = subprocess.Popen(
            [*cmd, "--control-fd", str(child.fileno())], pass_fds=[child.fileno()]
        )
        child.close()
        w.sock = parent
        log.info("media worker started", extra={"worker": w.index, "pid": w.proc.pid})
        c = self.config
        parent.send(
            encode(
                "hello",
                index=w.index,
                incarnation=w.incarnation,
                host=c.media_host,
                port=port,
                tcp_port=tcp_port,
                announce_ip=c.announce_ip,
                slots=c.slots,
                red=c.audio_red,
                call_log=c.call_log and self.tap is not None,
                key_b64=b64(self._key),
                log_level=c.log_level,
            )
        )

    async def _ready(self, w: _Worker) -> None:
        assert w.sock is not None and self._loop is not None
        w.sock.setblocking(False)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError(f"media worker {w.index} did not start")
            try:
                record = await asyncio.wait_for(
                    self._loop.sock_recv(w.sock, RECORD), timeout=remaining
                )
            except TimeoutError:
                raise OSError(f"media worker {w.index} did not start") from None
            if not record:
                raise OSError(f"media worker {w.index} exited while starting")
            msg = decode(record)
            if msg["op"] == "ready":
                w.port, w.tcp_port = int(msg["port"]), int(msg["tcp_port"])
                w.relay_address = list(msg["relay"])
                break
            self._pending.append((w.index, msg))
        w.alive = True
        w.stalled = False
        w.heard = time.monotonic()
        self._loop.add_reader(w.sock.fileno(), self._readable, w)

    def _tell_peers(self) -> None:
        peers = {str(w.index): [w.incarnation, *w.relay_address] for w in self.workers if w.alive}
        for w in self.workers:
            self._post(w, encode("peers", peers=peers))

    async def stop(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task
        for w in self.workers:
            if w.sock is not None and self._loop is not None and w.alive:
                with contextlib.suppress(Exception):
                    self._loop.remove_reader(w.sock.fileno())
            w.alive = False  # a planned end, not a loss
            self._post(w, encode("stop"))
        for w in self.workers:
            if w.proc is not None:
                try:
                    await asyncio.to_thread(w.proc.wait, 10)
                except subprocess.TimeoutExpired:
                    w.proc.kill()
                    await asyncio.to_thread(w.proc.wait)
            if w.sock is not None:
                w.sock.close()
                w.sock = None
        for handle in self._bursts.values():  # bursts in flight end: the log gets them
            if self.tap is not None:
                self.tap.close(handle)
        self._bursts.clear()

    @property
    def ports(self) -> list[int]:
        return [w.port for w in self.workers]

    # ------------------------------------------------------------------ control socket
    def _post(self, w: _Worker, record: bytes) -> None:
        """A one-way record; never waits (a full socket drops it, counted)."""
        if w.sock is None:
            return
        try:
            w.sock.send(record)
        except BlockingIOError:
            self.post_drops += 1
        except OSError:
            pass  # a dead worker: its end is handled by _lost

    def responsive(self, worker: int) -> bool:
        """The worker is alive, answered its last command and was heard lately: it may be
        asked something (a command to any other fails at once, never waiting)."""
        w = self.workers[worker]
        return (
            w.alive
            and w.sock is not None
            and not w.stalled
            and time.monotonic() - w.heard <= QUIET_SECONDS
        )

    def _unresponsive(self) -> frozenset[int]:
        return frozenset(w.index for w in self.workers if not self.responsive(w.index))

    def _call(self, worker: int, op: str, **fields: Any) -> Any:
        """Send a command and wait for its answer (events meanwhile are queued), at most
        CALL_TIMEOUT; a worker that is not :meth:`responsive` is not asked. Raises ValueError
        when the worker refuses it or does not answer (counted)."""
        w = self.workers[worker]
        if w.sock is None or not w.alive:
            w.call_failures["exited"] += 1
            raise ValueError(f"media worker {worker} is not running")
        if not self.responsive(worker):
            w.call_failures["unresponsive"] += 1
            raise ValueError(f"media worker {worker} is not answering")
        self._next_id += 1
        rid = self._next_id
        try:
            w.sock.send(encode(op, id=rid, **fields))
        except BlockingIOError:  # its socket is full: it has not read for a while
            w.stalled = True
            w.call_failures["unresponsive"] += 1
            raise ValueError(f"media worker {worker} is not reading") from None
        except OSError as exc:
            raise ValueError(f"media worker {worker}: {exc}") from None
        deadline = time.monotonic() + CALL_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([w.sock], [], [], remaining)[0]:
                # asked nothing more until heard again; replaced when silent SILENT_SECONDS
                self.call_timeouts += 1
                w.call_failures["timeout"] += 1
                w.stalled = True
                log.warning("media worker did not answer", extra={"worker": worker, "op": op})
                raise ValueError(f"media worker {worker} did not answer {op}")
            try:
                record = w.sock.recv(RECORD)
            except BlockingIOError:
                continue
            if not record:
                w.call_failures["exited"] += 1
                self._lost_soon(w)
                raise ValueError(f"media worker {worker} exited")
            w.heard = time.monotonic()
            msg = decode(record)
            if msg["op"] == "reply" and msg.get("id") == rid:
                # what the command caused (a detached source's talk_stopped, a burst's end)
                # reaches the hub before the call returns, as with one process
                self._drain()
                if "error" in msg:
                    raise ValueError(msg["error"])
                return msg.get("value")
            self._pending.append((worker, msg))

    def _drain(self) -> None:
        while self._pending:
            worker, msg = self._pending.popleft()
            self._dispatch(self.workers[worker], msg)

    def _readable(self, w: _Worker) -> None:
        sock = w.sock
        if sock is None:
            return
        self._drain()
        for _ in range(256):
            try:
                record = sock.recv(RECORD)
            except BlockingIOError:
                return
            except OSError:
                record = b""
            if not record:
                self._lost(w)
                return
            w.heard = time.monotonic()
            w.stalled = False  # (a late answer to a command that timed out: dropped below)
            try:
                msg = decode(record)
            except ValueError:
                continue
            self._dispatch(w, msg)

    def _lost_soon(self, w: _Worker) -> None:
        """Declare ``w`` lost after the hub's call in progress (its sessions get new offers)."""
        if self._loop is not None:
            self._loop.call_soon(self._lost, w)

    def _lost(self, w: _Worker) -> None:
        if not w.alive:
            return
        w.alive = False
        log.error("media worker exited", extra={"worker": w.index})
        if w.sock is not None and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(w.sock.fileno())
        self.placement.down(w.index)
        self._tell_peers()  # its datagrams are refused from now on (unknown peer)
        self._reown(w.index)
        self._listening.pop(w.index, None)
        for other in self.workers:
            if other is not w:
                self._post(other, encode("listening", worker=w.index, channels=[]))
        for key in [k for k in self._bursts if k[0] == w.index]:
            if self.tap is not None:
                self.tap.close(self._bursts.pop(key))
        lost = [sid for sid, (wi, _) in self.sessions.items() if wi == w.index]
        for sid in lost:  # each gets a new offer on a live worker (the hub's media_lost)
            del self.sessions[sid]
            if self.on_transport_lost is not None:
                self.on_transport_lost(sid)
        if not self._stopping and self._loop is not None:
            task = self._loop.create_task(self._restart(w), name=f"media-worker-{w.index}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _restart(self, w: _Worker) -> None:
        """Start a dead worker again, as a new incarnation: the others refuse its old one's
        relay packets (unknown peer) and learn the new one's."""
        if w.proc is not None:
            await asyncio.to_thread(w.proc.wait)
        if w.sock is not None:
            w.sock.close()
            w.sock = None
        w.incarnation += 1
        w.restarts += 1
        w.relay = {}
        w.connected = frozenset()
        self._spawn(w)
        try:
            await self._ready(w)
        except OSError:
            log.exception("media worker did not restart", extra={"worker": w.index})
            return
        self.placement.up(w.index)
        self._tell_peers()
        for other, channels in self._listening.items():  # where its talkers' packets go
            self._post(w, encode("listening", worker=other, channels=channels))
        for channel in self.ownership.channels():
            self._tell_owner(channel, self.ownership.owner(channel), only=w)
        log.info("media worker restarted", extra={"worker": w.index, "port": w.port})

    def _dispatch(self, w: _Worker, msg: dict[str, Any]) -> None:
        op = msg["op"]
        tap = self.tap
        if op == "tap_packets":
            if tap is not None:
                bursts = self._bursts
                for h, plain in msg["items"]:
                    handle = bursts.get((w.index, h))
                    if handle is not None:
                        tap.packet(handle, plain)
        elif op == "tap_packet":
            handle = self._bursts.get((w.index, msg["h"]))
            if handle is not None and tap is not None:
                tap.packet(handle, msg["plain"])
        elif op == "tap_open" and tap is not None:
            # the worker's clock: only differences matter to the tap
            preroll = [(unb64(p), int(ms)) for p, ms in msg["preroll"]]
            self._bursts[(w.index, msg["h"])] = tap.open(
                msg["session"], msg["channel"], preroll, int(msg["now_ms"])
            )
        elif op == "tap_close":
            handle = self._bursts.pop((w.index, msg["h"]), None)
            if handle is not None and tap is not None:
                tap.close(handle)
        elif op == "talk_started":
            self.events.talk_started(msg["session"], msg["channel"], msg["slot"])
        elif op == "talk_stopped":
            self.events.talk_stopped(msg["session"], msg["channel"], msg["slot"])
        elif op == "slot_busy":
            self.events.slot_busy(msg["session"], msg["channel"], msg["slots"])
        elif op == "preempted":
            self.events.preempted(msg["session"], msg["channel"], msg["slot"], msg["by"])
        elif op == "media_lost":  # a new offer: never inside a command to a worker
            if self.on_transport_lost is not None and self._loop is not None:
                self._loop.call_soon(self.on_transport_lost, msg["session"])
        elif op == "listening":
            self._listening[w.index] = list(msg["channels"])
            for other in self.workers:
                if other is not w:
                    self._post(other, encode("listening", worker=w.index, channels=msg["channels"]))
        elif op == "stats":
            w.relay = msg["relay"]
            w.links = int(msg["links"])
            w.connected = frozenset(msg.get("connected", ()))
            w.families = list(msg.get("families", ()))
            w.cpu_s = float(msg.get("cpu_s", 0.0))
            if "added" in msg:
                w.added = LatencyHistogram.from_dict(msg["added"])

    # ------------------------------------------------------------------ ownership
    def _carry(self, route: Route, worker: int) -> None:
        """The channels of ``route`` get an owner (``worker``) where they have none; every
        worker hears of it before the command that needs it (one ordered socket each)."""
        for channel in sorted(route.channels):
            if self.ownership.owner(channel) is None:
                self._tell_owner(channel, self.ownership.carry(channel, worker))

    def _tell_owner(self, channel: str, owner: Owner | None, only: _Worker | None = None) -> None:
        if owner is None:
            return
        record = encode("owner", channel=channel, worker=owner.worker, epoch=owner.epoch)
        for w in self.workers if only is None else [only]:
            self._post(w, record)

    def _reown(self, dead: int) -> None:
        """The dead worker's channels: to a live carrier, else the least-loaded live worker
        (an owner need not carry the channel: its router is made for the relayed talkers),
        each with a new epoch."""
        live = sorted(self.placement.alive - {dead})
        carriers = {
            c: [w for w in live if self.placement.carries(w, c)]
            for c in self.ownership.owned_by(dead)
        }
        for channel, owner in self.ownership.worker_died(dead, carriers).items():
            if owner is None and live:
                least = min(live, key=lambda w: (self.placement.load(w), w))
                owner = self.ownership.carry(channel, least)
            self._tell_owner(channel, owner)

    # ------------------------------------------------------------------ MediaPort
    def _worker_of(self, session_id: str) -> int:
        placed = self.sessions.get(session_id)
        if placed is None:
            raise ValueError("no transport for this session")
        return placed[0]

    def open(self, session_id: str, route: Route) -> str:
        placed = self.sessions.get(session_id)
        if (
            placed is not None and self.workers[placed[0]].alive and not self.responsive(placed[0])
        ):  # a new peer connection on a worker not answering: on another one
            self._forget(session_id)
            placed = None
        if placed is None or not self.workers[placed[0]].alive:
            channel = (route.sends or route.hears or ("",))[0]
            worker = self.placement.choose(channel, self._unresponsive())
            self.placement.placed(worker, channel)
            self.sessions[session_id] = placed = (worker, channel)
        self._carry(route, placed[0])
        sdp = self._call(placed[0], "open", session=session_id, route=route_dict(route))
        assert isinstance(sdp, str)
        return sdp

    def answer(
        self, session_id: str, sdp: str, revision: int | None = None
    ) -> Renegotiation | None:
        value = self._call(
            self._worker_of(session_id), "answer", session=session_id, sdp=sdp, revision=revision
        )
        return _renegotiation(value)

    def set_route(self, session_id: str, route: Route) -> Renegotiation | None:
        self._carry(route, self._worker_of(session_id))
        value = self._call(
            self._worker_of(session_id), "set_route", session=session_id, route=route_dict(route)
        )
        return _renegotiation(value)

    def ice_restart(self, session_id: str) -> Renegotiation:
        value = _renegotiation(
            self._call(self._worker_of(session_id), "ice_restart", session=session_id)
        )
        assert value is not None
        return value

    def close(self, session_id: str) -> None:
        placed = self.sessions.get(session_id)
        if placed is None:
            return
        try:
            self._call(placed[0], "close", session=session_id)
            self.sessions.pop(session_id, None)
            self.placement.left(*placed)
        except ValueError:
            self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        """The session leaves a worker that may not be answering: its ``close`` is posted (the
        worker does it when it reads again, after whatever it was asked before), not awaited."""
        placed = self.sessions.pop(session_id, None)
        if placed is not None:
            self.placement.left(*placed)
            self._post(self.workers[placed[0]], encode("close", session=session_id))

    def has_transport(self, session_id: str) -> bool:
        placed = self.sessions.get(session_id)
        if placed is None:
            return False
        try:
            return bool(self._call(placed[0], "has_transport", session=session_id))
        except ValueError:
            return False

    def route_of(self, session_id: str) -> Route | None:
        placed = self.sessions.get(session_id)
        if placed is None:
            return None
        try:
            value = self._call(placed[0], "route_of", session=session_id)
        except ValueError:  # its worker is not answering
            return None
        return route_of(value) if value is not None else None

    def blocks(self, session_id: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
        placed = self.sessions.get(session_id)
        if placed is None:
            return ()
        try:
            value = self._call(placed[0], "blocks", session=session_id)
        except ValueError:  # its worker is not answering
            return ()
        return tuple((c, tuple(s)) for c, s in value)

    def media_connected(self, session_id: str) -> bool:
        """As of the worker's last stats record (at most a second old): the presence sampler
        asks this of every session, which must not cost a command each."""
        placed = self.sessions.get(session_id)
        return placed is not None and session_id in self.workers[placed[0]].connected

    # ------------------------------------------------------------------ server-side sources
    # An announcement plays on the worker that owns its channel (its arbiter): the parent
    # builds its RTP packets (a RemoteSource) and posts them there, one record per frame.
    def _owner_worker(self, channel: str) -> int:
        owner = self.ownership.owner(channel)
        if owner is None or not self.workers[owner.worker].alive:
            live = sorted(self.placement.alive)
            if not live:
                raise ValueError("no media worker is alive")
            least = min(live, key=lambda w: (self.placement.load(w), w))
            if owner is not None:  # its worker is down and not re-owned yet
                self.ownership.release(channel)
            owner = self.ownership.carry(channel, least)
            self._tell_owner(channel, owner)
        return owner.worker

    def attach_source(self, source_id: str, route: Route, *, logged: bool = True) -> ServerSource:
        if route.hears or not route.sends:
            raise ValueError("a server-side source talks into a channel and hears nothing")
        worker = self._owner_worker(route.sends[0])
        self._carry(route, worker)
        self._call(
            worker, "attach_source", source=source_id, route=route_dict(route), logged=logged
        )
        self.sources[source_id] = worker
        w = self.workers[worker]
        return RemoteSource(
            source_id, lambda rtp: self._post(w, encode("source_packet", source=source_id,
                                                         rtp_b64=b64(rtp)))
        )  # fmt: skip

    def detach_source(self, source_id: str) -> None:
        """Answered, so that its burst's talk_stopped reaches the hub before the announcer
        forgets the source's name (as with one process)."""
        worker = self.sources.pop(source_id, None)
        if worker is not None:
            with contextlib.suppress(ValueError):
                self._call(worker, "detach_source", source=source_id)

    def slot_free(self, channel: str) -> bool:
        owner = self.ownership.owner(channel)
        if owner is None:
            return True  # nobody there: no router, no slot held
        try:
            return bool(self._call(owner.worker, "slot_free", channel=channel))
        except ValueError:
            return True

    def holds_slot(self, session_id: str, channel: str) -> bool:
        owner = self.ownership.owner(channel)
        if owner is None:
            return False
        try:
            return bool(self._call(owner.worker, "holds_slot", session=session_id, channel=channel))
        except ValueError:
            return False

    # ------------------------------------------------------------------ metrics
    def families(self) -> list[Family]:
        up = Family("voice_media_worker_up", "gauge", "Media workers running (by worker)")
        placed = Family("voice_media_worker_sessions", "gauge", "Sessions placed on each worker")
        sent = Family(
            "voice_relay_datagrams_sent_total",
            "counter",
            "Relay datagrams sent: media (a talker's packet to its channel's owner), mirror (what"
            " the owner forwarded, once to each other worker with listeners)",
        )
        packets = Family(
            "voice_relay_packets_total", "counter", "Forwarded packets mirrored to other workers"
        )
        received = Family(
            "voice_relay_datagrams_received_total", "counter", "Relay datagrams accepted"
        )
        drops = Family("voice_relay_drops_total", "counter", "Relay datagrams refused, by reason")
        for w in self.workers:
            label = str(w.index)
            up.add(1 if w.alive else 0, worker=label)
            placed.add(self.placement.load(w.index), worker=label)
            for kind, n in dict(w.relay.get("sent", {})).items():
                sent.add(int(n), worker=label, kind=kind)
            packets.add(int(w.relay.get("packets", 0)), worker=label)
            received.add(int(w.relay.get("received", 0)), worker=label)
            for reason, n in dict(w.relay.get("drops", {})).items():
                drops.add(int(n), worker=label, reason=reason)
        quiet = Family(
            "voice_relay_silence_total",
            "counter",
            "Local talkers' silent packets held back from owners elsewhere (held), and held ones"
            " sent as a voiced run's lead (lead)",
        )
        for w in self.workers:
            for what, n in dict(w.relay.get("quiet", {})).items():
                quiet.add(int(n), worker=str(w.index), what=what)
        restarts = Family("voice_media_worker_restarts_total", "counter", "Media workers restarted")
        for w in self.workers:
            restarts.add(w.restarts, worker=str(w.index))
        timeouts = Family(
            "voice_media_worker_call_timeouts_total", "counter", "Worker commands unanswered"
        ).add(self.call_timeouts)
        failures = Family(
            "voice_media_worker_call_failures_total",
            "counter",
            "Worker commands that failed without an answer: timeout (unanswered in time),"
            " unresponsive (not asked: the worker is stalled or silent), exited",
        )
        for w in self.workers:
            for reason, n in w.call_failures.items():
                failures.add(n, worker=str(w.index), reason=reason)
        dropped = Family(
            "voice_media_worker_records_dropped_total",
            "counter",
            "Control records dropped on a full socket: to the workers, and from each",
        ).add(self.post_drops, direction="to_workers")
        for w in self.workers:
            dropped.add(int(w.relay.get("event_drops", 0)), direction="from_worker",
                        worker=str(w.index))  # fmt: skip
        cpu = Family(
            "voice_media_worker_cpu_seconds_total", "counter", "CPU time of each media worker"
        )
        copies = Family(
            "voice_media_worker_packets_out_total", "counter", "RTP copies each worker forwarded"
        )
        added = LatencyHistogram()
        for w in self.workers:
            cpu.add(round(w.cpu_s, 3), worker=str(w.index))
            copies.add(_sample(w.families, "voice_media_packets_out_total"), worker=str(w.index))
            added.merge(w.added)
        hop = added.family(
            "voice_relay_added_seconds",
            "Relay datagrams: the sender's send time to the receiving worker's receipt",
            stride=2,
        )
        mine = [up, placed, sent, packets, received, drops, quiet, restarts, timeouts, failures]
        mine.append(dropped)
        mine.append(cpu)
        mine += [copies, hop]
        return mine + summed([w.families for w in self.workers])


class RemoteSource(ServerSource):
    """A server-side source whose packets are made here and forwarded by a media worker: the
    same RTP a local one makes (its seq, timestamp, audio level), handed to ``post``."""

    def __init__(self, source_id: str, post: Callable[[bytes], None]) -> None:
        super().__init__(source_id, payload_type=OPUS_PT)
        self.sink = lambda rtp, _t0: post(rtp)


def _sample(families: list[Any], name: str) -> float:
    """The unlabelled sample ``name`` of one worker's serialized families (0 when absent)."""
    for fname, _, _, samples in families:
        if fname == name:
            return float(sum(v for x, labels, v in samples if not x and not labels))
    return 0.0


def summed(per_worker: list[list[Any]]) -> list[Family]:
    """The workers' media families as one process would show them: each sample (name, suffix,
    labels) summed over the workers (counters, gauges and histogram buckets add up)."""
    out: dict[str, Family] = {}
    sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for families in per_worker:
        for name, kind, help_text, samples in families:
            if name not in out:
                out[name] = Family(name, kind, help_text)
                sums[name] = {}
            for suffix, labels, value in samples:
                key = (suffix, tuple(sorted(labels.items())))
                sums[name][key] = sums[name].get(key, 0.0) + float(value)
    for name, fam in out.items():
        for (suffix, labels), value in sums[name].items():
            fam.add(value, suffix, **dict(labels))
    return list(out.values())


def _renegotiation(value: Any) -> Renegotiation | None:
    if value is None:
        return None
    blocks = tuple((c, tuple(s)) for c, s in value.get("blocks", ()))
    return Renegotiation(value["sdp"], int(value["revision"]), blocks)
