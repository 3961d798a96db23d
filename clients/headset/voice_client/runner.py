"""The asyncio layer of the headset client: moves messages between the WebSocket, the signaling
session (:mod:`voice_client.signaling`, sans I/O) and the peer (:mod:`voice_client.peer`).

It owns every task it starts (reader, pinger, slot recorders, push-to-talk readers) and cancels
and awaits them on the way out; the recording is written after the peer is closed.

Reconnect (the same rule as the phone client): when the connection drops while joined, or the
server says nothing for 5 s although it is pinged every 2 s (:mod:`voice_client.liveness`), it
connects again after 0.25, 0.5, 1, 2, 2 … s and joins with the previous session id: within the
server's grace period the session is resumed, after it the server starts a new one for the same
user and device. A new ``offer`` always means a new peer connection (the old one is closed).
A refusal (token, channel, replaced by another join of this device) is not retried.

Failover (a cluster, ``--node``): the tries go to the configured nodes in turn
(:func:`voice_client.nodes.failover_node`): back to the same node only after a dropped socket,
to the next one after a silence, a try that failed (connection refused, a failed or timed-out
handshake) or a join refused with ``cluster_unavailable``; each change prints ``failover``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice_client.devices import AudioDeviceError, Capture, Playout, pick
from voice_client.ducking import Ducking
from voice_client.emergency_control import EmergencyControl
from voice_client.gate import Gate
from voice_client.jitter import ReceiveStats, low_latency_audio
from voice_client.liveness import SILENCE_LIMIT, Liveness
from voice_client.loopback import is_loopback_host, loopback_candidates
from voice_client.netreport import INTERVAL, Counters
from voice_client.netreport import report as network_report
from voice_client.nodes import Lost, failover_node, next_node
from voice_client.opus import speech_opus
from voice_client.peer import ClientPeer, DeviceMicTrack, MicTrack, SlotRecorder
from voice_client.ptt import PttState, evdev_reader, terminal_key_map
from voice_client.reorder import DEFAULT_DEPTH_MS
from voice_client.replay import (
    RATE,
    chime_pcm,
    decode_clip,
    fetch_bytes,
    fetch_json,
    http_base,
    missed_in_order,
    replay_url,
)
from voice_client.signaling import (
    Action,
    AnswerOffer,
    ClientSession,
    Duck,
    EmergencyWindow,
    Emit,
    End,
    Move,
    NeedToken,
    NodeUnavailable,
    Send,
    SessionState,
    Warn,
)
from voice_client.turntls import client_context, turn_tls_context
from voice_client.vad import GateMode, VadGate, VadRules
from voice_client.wavio import Mix, write_wav

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "ClientError", "Options", "run"]

EXIT_OK = 0
EXIT_ERROR = 1  # could not connect, connection lost, media failed, cannot write the recording
LOCAL_MID = "local"  # the playout's stream for cues and replayed clips
EXIT_REFUSED = 3  # the server refused or ended the session with an error code

LEAVE_TIMEOUT = 3.0
OPEN_TIMEOUT = 10.0
BACKOFF = (0.25, 0.5, 1.0, 2.0)


class ClientError(Exception):
    """A failure to report as one line; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class ConnectFailed(ClientError):
    """The server could not be reached: nothing listens (``refused``), or the connection or
    its handshake failed or timed out."""

    def __init__(self, message: str, *, refused: bool) -> None:
        super().__init__(message)
        self.refused = refused


@dataclass(slots=True)
class Options:
    url: str  # ws:// or wss:// signaling URL
    channel: str
    device_id: str
    token: str | None = None
    monitor: tuple[str, ...] = ()  # channels also heard (a route asked for once media is up)
    monitor_delay: float = 0.0  # seconds after media is up before the route is asked for
    console: bool = False  # monitor as a console (``monitor``, ``talk_target``), not a route
    talk_target: tuple[str, ...] = ()  # a console's channels to talk into
    talk_user: str | None = None  # a console's direct talk to this user
    token_file: Path | None = None
    pcm: bytes = b""  # what to say, PCM48 mono
    loop: bool = False
    record: Path | None = None
    duration: float | None = None
    opus_bitrate: int | None = 24_000  # None: aiortc's own 96 kbps stereo
    loopback: bool | None = None  # None: when the server host is a loopback address
    mode: GateMode = GateMode.HANDSFREE
    vad: VadRules = field(default_factory=VadRules)
    input_device: str | None = None  # --input: capture from this device instead of --play
    output_device: str | None = None  # --output: play what is heard on this device
    playout_ms: int = 20  # output prebuffer (jitter absorption)
    ptt_key: str | None = " "  # terminal key toggling push-to-talk (None: none)
    ptt_device: str | None = None  # evdev device for a hold-to-talk button
    emergency_key: str | None = None  # terminal key: two presses within 3 s, then a countdown
    emergency_device: str | None = None  # evdev device: hold its button 2 s, then a countdown
    replay_key: str | None = "r"  # terminal key: play what was missed (None: none)
    reconnect: bool = True
    nodes: tuple[str, ...] = ()  # other nodes' signaling URLs a migrate may send us to
    report_onsets: bool = False  # print "onset" events (latency benchmark)
    low_latency: bool = True  # skip aiortc's 80 ms audio jitter buffer
    reorder_ms: int = DEFAULT_DEPTH_MS  # the receive reordering window's depth (jitter.py)
    ca_file: Path | None = None  # --ca-file: also trust this CA (wss:// and turns: relays)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ClientError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise ClientError(f"token file {path} is empty")
    return token


class _Client:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.url = opts.url  # the node joined now (a migrate or a failover may change it)
        self.nodes = [opts.url, *opts.nodes]  # the configured nodes, --server first
        self.lost = Lost.DROPPED  # why the next reconnect happens (voice_client.nodes)
        self.t0 = time.monotonic()
        self.loop = asyncio.get_running_loop()
        token = opts.token if opts.token is not None else read_token(_need(opts.token_file))
        self.session = ClientSession(token=token, channel=opts.channel, device_id=opts.device_id)
        self.mix = Mix() if opts.record is not None else None
        self.ducking = Ducking([opts.channel, *opts.monitor])
        self.gate = Gate(VadGate(opts.vad, opts.mode), self.gate_changed)
        self.ptt = PttState(self.ptt_changed)
        self.emergency = EmergencyControl(self.gate.vad, self.emit, self.send_emergency)
        self.capture: Capture | None = None
        self.playout: Playout | None = None
        self.mic: MediaStreamTrack = MicTrack(opts.pcm, loop=opts.loop, gate=self.gate)
        self.peer: ClientPeer | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.ws: ClientConnection | None = None
        self.ended = asyncio.Event()
        self.end: End | None = None
        self.leaving = False
        self.media_connected = False
        try:
            self.tls = client_context(opts.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ClientError(
                f"--ca-file {opts.ca_file}: no CA certificate read ({exc})", 2
            ) from None
        self.replaying: asyncio.Task[None] | None = None
        self.receive: ReceiveStats | None = None  # the receive buffers' counters (jitter.py)

    # ------------------------------------------------------------ output

    def emit(self, event: dict[str, Any]) -> None:
        line = {"event": event["event"], "t": round(time.monotonic() - self.t0, 3)}
        line.update({k: v for k, v in event.items() if k != "event"})
        print(json.dumps(line, ensure_ascii=False), file=self.opts.out, flush=True)

    def emit_receive(self, *, heard_only: bool = False) -> None:
        """The ``receive`` event: what the receive buffers did so far (on SIGUSR1, and at exit
        when any audio came)."""
        if self.receive is None:
            return
        totals = self.receive.totals()
        if heard_only and not totals["packets"]:
            return
        played = totals["frames"] + totals["filled"]
        ratio = round(totals["filled"] / played, 4) if played else None
        self.emit(
            {
                "event": "receive",
                "reorder_ms": self.receive.depth_ms,
                **totals,
                "concealed_ratio": ratio,
            }
        )

    def warn(self, text: str) -> None:
        print(f"voice-client: warning: {text}", file=self.opts.err, flush=True)

    # ------------------------------------------------------------ audio

    def open_devices(self) -> None:
        opts = self.opts
        on_onset = self.play_onset if opts.report_onsets else None
        if opts.input_device is not None:
            self.capture = Capture(pick(opts.input_device, "input"))
            self.capture.start()
            self.mic = DeviceMicTrack(self.capture, self.gate)
        if opts.output_device is not None:
            self.playout = Playout(
                pick(opts.output_device, "output"), prebuffer_ms=opts.playout_ms, on_onset=on_onset
            )
            self.playout.start()
            self.emit(
                {
                    "event": "audio",
                    "input": self.capture.device.name if self.capture else None,
                    "output": self.playout.device.name if self.playout.device else None,
                    "output_latency_ms": round(self.playout.latency * 1000, 1),
                }
            )

    def close_devices(self) -> None:
        if self.capture is not None:
            self.capture.stop()
        if self.playout is not None:
            self.playout.stop()

    def gate_changed(self, open_: bool) -> None:
        self.emit({"event": "sending", "on": open_})

    def ptt_changed(self, pressed: bool) -> None:
        self.gate.vad.set_ptt(pressed)
        self.emit({"event": "ptt", "pressed": pressed})

    def play_onset(self, wall: float) -> None:
        # called on the output thread: hand over to the loop
        self.loop.call_soon_threadsafe(self.emit, {"event": "onset", "wall": wall, "at": "play"})

    def recv_onset(self, mid: str, wall: float) -> None:
        self.emit({"event": "onset", "wall": wall, "at": "decoded", "mid": mid})

    # ------------------------------------------------------------ actions

    async def do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self.ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.send(action.text())
            elif isinstance(action, AnswerOffer):
                if not action.renegotiate:  # one block of slots (the own channel's)
                    self.ducking.slots = max(1, action.sdp.count("m=audio") - 1)
                if action.renegotiate and self.peer is not None:
                    sdp = await self.renegotiate(self.peer, action.sdp)
                else:
                    sdp = await self.answer(action.sdp)
                await self.do(self.session.answer(sdp, action.revision))
            elif isinstance(action, Emit):
                self.emit(action.event)
                event = action.event
                if event["event"] == "talk_target_set" and self.opts.mode is GateMode.PTT:
                    self.ptt.set("talk_target", True)  # a console in ptt mode talks from then on
                if event["event"] == "talk_started" and event.get("kind") == "announcement":
                    self.spawn(self.play_local(chime_pcm()))  # the clip holds speech only
            elif isinstance(action, EmergencyWindow):
                self.emergency.window(action.seconds)
            elif isinstance(action, Duck):
                self.ducking.set(action.channel, action.slot, action.db, action.mid)
            elif isinstance(action, Warn):
                self.warn(action.text)
            elif isinstance(action, NeedToken):
                await self.refresh_token(action.expires_at)
            elif isinstance(action, Move):
                self.move(action.url)
            elif isinstance(action, NodeUnavailable):
                self.lost = Lost.UNAVAILABLE
            elif isinstance(action, End):
                if self.end is None:
                    self.end = action
                self.ended.set()

    def move(self, url: str | None) -> None:
        """Where the next connection goes after a migrate (:mod:`voice_client.nodes`)."""
        target, refused = next_node(self.url, self.nodes, url)
        if refused:
            self.warn(f"migrate to {url} not followed: not a configured node (--node)")
        if target != self.url:
            self.url = target
            self.emit({"event": "moving", "to": target})

    def fail_over(self, why: Lost) -> None:
        """Where the next try goes after ``why`` (:func:`voice_client.nodes.failover_node`);
        a change of node prints ``failover`` {from, to, reason}."""
        target = failover_node(self.url, self.nodes, why)
        if target != self.url:
            self.emit({"event": "failover", "from": self.url, "to": target, "reason": why.value})
            self.url = target

    async def answer(self, sdp: str) -> str:
        if self.peer is not None:  # a new offer: the server lost our transport, start over
            old, self.peer = self.peer, None
            await old.close()
        self.peer = ClientPeer(self.mic, self.start_recorder, self.session.ice_servers)
        peer = self.peer
        peer.pc.on("connectionstatechange", lambda: self.on_media_state(peer))
        try:
            return await peer.answer(sdp)
        except ValueError as exc:  # aiortc raises ValueError for SDP it cannot use
            raise ClientError(f"cannot answer the server's offer: {exc}") from None

    async def renegotiate(self, peer: ClientPeer, sdp: str) -> str:
        """Apply a renegotiation offer to the live peer connection (no new one)."""
        try:
            answer = await peer.answer(sdp)
        except ValueError as exc:
            raise ClientError(f"cannot apply the server's renegotiation: {exc}") from None
        self.emit({"event": "renegotiated", "mids": len(peer.pc.getTransceivers())})
        return answer

    def on_media_state(self, peer: ClientPeer) -> None:
        if peer is not self.peer:
            return
        state = peer.connection_state
        self.emit({"event": "media", "state": state})
        if state == "connected":
            if not self.media_connected:
                self.spawn(self.ask_first_route())
            self.media_connected = True
        if state == "failed" and not self.leaving and not self.opts.reconnect:
            self.end = End(ok=False, reason="media connection failed")
            self.ended.set()

    async def ask_first_route(self) -> None:
        if self.opts.monitor_delay > 0:
            await asyncio.sleep(self.opts.monitor_delay)
        await self.do(self.first_route())

    def first_route(self) -> list[Action]:
        """What to ask once media is up: a route (``--monitor``), or a console's monitor and
        talk target (``--console``)."""
        opts, out = self.opts, []
        if opts.console:
            if opts.monitor:
                out += self.session.monitor(list(opts.monitor))
            if opts.talk_user is not None:
                out += self.session.talk_target(user=opts.talk_user)
            elif opts.talk_target:
                out += self.session.talk_target(list(opts.talk_target))
        elif opts.monitor:
            channel = opts.channel
            out += self.session.route([channel], [channel, *opts.monitor])
        return out

    # ------------------------------------------------------------ replay and cues

    async def play_local(self, pcm: bytes) -> None:
        """Play PCM48 that did not come from the server (a cue, a replayed clip) into the
        recording and, paced in 20 ms frames, the output (whose buffer stays short)."""
        if self.mix is not None:
            self.mix.add(int((time.monotonic() - self.t0) * RATE), pcm)
        frame = RATE // 50 * 2
        start = time.monotonic()
        for n, pos in enumerate(range(0, len(pcm), frame)):
            if self.playout is not None:
                self.playout.push(LOCAL_MID, pcm[pos : pos + frame])
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - time.monotonic()))

    def replay_pressed(self) -> None:
        if self.replaying is None or self.replaying.done():
            self.replaying = self.spawn(self.replay_missed())

    async def replay_missed(self) -> None:
        """Fetch what was missed in the channel and play it, oldest first."""
        url = replay_url(self.url, self.opts.channel)
        try:
            body = await asyncio.to_thread(fetch_json, url, self.session.token, 15.0, self.tls)
        except (OSError, ValueError) as exc:
            self.warn(f"replay failed: {exc}")
            return
        items = missed_in_order(body)
        self.emit({"event": "replay_list", "missed": len(items)})
        base = http_base(self.url)
        for item in items:
            try:
                data = await asyncio.to_thread(fetch_bytes, base + item["clip_url"], 15.0, self.tls)
                pcm = await asyncio.to_thread(decode_clip, data)
            except Exception as exc:  # one bad clip: say so and go on with the next
                self.warn(f"replay of {item['id']} failed: {exc}")
                continue
            self.emit(
                {
                    "event": "replay",
                    "id": item["id"],
                    "speaker": item["speaker_name"],
                    "start": item["start"],
                    "text": item["text"],
                }
            )
            await self.play_local(pcm)  # one message after the other
        self.emit({"event": "replay_done", "played": len(items)})

    def start_recorder(self, mid: str, track: MediaStreamTrack) -> None:
        playout = self.playout
        recorder = SlotRecorder(
            mid,
            self.t0,
            self.mix,
            sink=playout.push if playout is not None else None,
            on_onset=self.recv_onset if self.opts.report_onsets and playout is None else None,
            gain=self.ducking.gain,
        )
        self.spawn(recorder.run(track))

    async def refresh_token(self, expires_at: int) -> None:
        if self.opts.token_file is None:
            self.warn(f"token expires at {expires_at}; start with --token-file to refresh it")
            return
        try:
            token = read_token(self.opts.token_file)
        except ClientError as exc:
            self.warn(str(exc))
            return
        await self.do(self.session.refresh(token))

    # ------------------------------------------------------------ tasks

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def read(self, ws: ClientConnection, live: Liveness) -> None:
        try:
            async for text in ws:
                live.heard(time.monotonic())  # any message counts as life
                await self.do(self.session.receive(text))
                live.handled(time.monotonic())
                if self.ended.is_set():
                    return
        except ConnectionClosed:
            pass
        except ClientError as exc:
            self._fail(str(exc))
            return
        except Exception as exc:  # an aiortc or programming error: end, do not hang
            self._fail(f"internal error: {exc!r}")
            return
        await self.do(self.session.connection_lost())

    def _fail(self, reason: str) -> None:
        if self.end is None:
            self.end = End(ok=False, reason=reason)
        self.ended.set()

    async def heartbeat(self, ws: ClientConnection, live: Liveness) -> None:
        """Ping while joined; when the server has said nothing for SILENCE_LIMIT seconds, drop
        the socket (a frozen server would never finish a closing handshake) and end the
        connection as lost: the reconnect path joins again."""
        while True:
            now = time.monotonic()
            beat = live.beat(now, joined=self.session.state is SessionState.JOINED)
            if beat.dead:
                silent = live.silent_for(now)
                lost = self.session.connection_lost(
                    f"no message from the server for {silent:.1f} s (limit {SILENCE_LIMIT:g} s)"
                )
                ws.transport.abort()
                self.lost = Lost.SILENT
                await self.do(lost)
                return
            if beat.ping:  # sent aside: a send stuck on a full socket must not hold the watch
                self.spawn(self.do(self.session.ping()))
            await asyncio.sleep(max(0.0, beat.wake_at - time.monotonic()))

    async def report_network(self) -> None:
        """Every INTERVAL seconds while media is up: the ``stats`` report (netreport)."""
        before: tuple[ClientPeer, Counters] | None = None
        while True:
            await asyncio.sleep(INTERVAL)
            peer = self.peer
            if peer is None or peer.connection_state != "connected":
                continue
            now = await peer.counters()
            if self.receive is not None:
                totals = self.receive.totals()
                now = replace(now, frames=totals["frames"], filled=totals["filled"])
            previous = before[1] if before is not None and before[0] is peer else None
            await self.do(self.session.stats(network_report(now, previous)))
            before = (peer, now)

    async def send_emergency(self) -> None:
        await self.do(self.session.emergency("raise"))

    async def emergency_device(self, path: str) -> None:
        try:
            await evdev_reader(path, _evdev_keys(), self.emergency.hold)
        except RuntimeError as exc:
            self.warn(str(exc))

    async def ptt_device(self, path: str) -> None:
        try:
            await evdev_reader(path, _evdev_keys(), lambda p: self.ptt.set("evdev", p))
        except RuntimeError as exc:
            self.warn(str(exc))

    # ------------------------------------------------------------ connections

    async def open_socket(self) -> ClientConnection:
        try:
            tls = self.tls if self.url.startswith("wss:") else None
            return await connect(self.url, open_timeout=OPEN_TIMEOUT, max_size=1 << 20, ssl=tls)
        except InvalidURI as exc:
            raise ClientError(f"bad server URL {self.url}: {exc}", 2) from None
        except InvalidHandshake as exc:
            raise ConnectFailed(f"cannot connect to {self.url}: {exc}", refused=False) from None
        except (OSError, TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConnectFailed(
                f"cannot connect to {self.url}: {reason or 'timed out'}",
                refused=isinstance(exc, ConnectionRefusedError),
            ) from None

    async def reopen(self, stop: asyncio.Event, deadline: float | None) -> ClientConnection | None:
        """Connect again with backoff until it works, ``stop`` is set or the deadline passes;
        the first try goes where :attr:`lost` says, each failed one moves to the next node."""
        self.fail_over(self.lost)
        self.lost = Lost.DROPPED
        attempt = 0
        while not stop.is_set():
            delay = BACKOFF[min(attempt, len(BACKOFF) - 1)] * random.uniform(0.8, 1.2)
            attempt += 1
            if deadline is not None and time.monotonic() + delay >= deadline:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return None
            try:
                return await self.open_socket()
            except ConnectFailed as exc:
                self.fail_over(Lost.REFUSED if exc.refused else Lost.FAILED)
        return None

    async def session_on(
        self, ws: ClientConnection, stop: asyncio.Event, deadline: float | None
    ) -> str:
        """Run one connection; return why it ended: 'ended', 'stop' or 'timeout'."""
        self.ws = ws
        self.ended.clear()
        self.lost = Lost.DROPPED
        live = Liveness.opened(time.monotonic())
        await self.do(self.session.start())
        reader = self.spawn(self.read(ws, live))
        pinger = self.spawn(self.heartbeat(ws, live))
        waits = [asyncio.ensure_future(self.ended.wait()), asyncio.ensure_future(stop.wait())]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            pinger.cancel()
        if self.ended.is_set():
            reader.cancel()
            return "ended"
        return "stop" if stop.is_set() else "timeout"

    async def run(self) -> int:
        opts = self.opts
        deadline = None if opts.duration is None else self.t0 + opts.duration
        try:
            self.open_devices()
        except AudioDeviceError as exc:
            self.close_devices()
            raise ClientError(str(exc)) from None
        ws: ClientConnection | None = await self.open_socket()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.add_signal_handler(sig, stop.set)
        usr1 = getattr(signal, "SIGUSR1", None)
        if usr1 is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self.loop.add_signal_handler(usr1, self.emit_receive)
        keys = contextlib.ExitStack()
        try:
            pressed: dict[str, Callable[[], None]] = {}
            if opts.mode is GateMode.PTT and opts.ptt_key:
                pressed[opts.ptt_key] = lambda: self.ptt.toggle("key")
            if opts.emergency_key:
                pressed[opts.emergency_key] = self.emergency.press
            if opts.replay_key:
                pressed[opts.replay_key] = self.replay_pressed
            keys.enter_context(terminal_key_map(pressed))
            if opts.mode is GateMode.PTT and opts.ptt_device:
                self.spawn(self.ptt_device(opts.ptt_device))
            self.spawn(self.report_network())
            if opts.emergency_key or opts.emergency_device:
                self.spawn(self.emergency.tick_forever())
            if opts.emergency_device:
                self.spawn(self.emergency_device(opts.emergency_device))
            while ws is not None:
                why = await self.session_on(ws, stop, deadline)
                end = self.end
                if why == "ended" and end is not None and end.retry and opts.reconnect:
                    self.end = None
                    self.emit({"event": "disconnected", "reason": end.reason})
                    with contextlib.suppress(Exception):
                        await ws.close()
                    self.ws = None
                    ws = await self.reopen(stop, deadline)
                    if ws is None:
                        break
                    token = read_token(opts.token_file) if opts.token_file else None
                    self.session.reconnect(token)
                    self.emit({"event": "reconnecting"})
                    continue
                if why != "ended":
                    if self.session.state is SessionState.JOINING:
                        raise ClientError("the server did not answer the join")
                    self.leaving = True
                    self.ended.clear()
                    await self.do(self.session.leave())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.ended.wait(), LEAVE_TIMEOUT)
                break
        finally:
            keys.close()
            for gone in (signal.SIGINT, signal.SIGTERM, usr1):
                if gone is not None:
                    with contextlib.suppress(NotImplementedError, RuntimeError):
                        self.loop.remove_signal_handler(gone)
            if self.ws is not None:
                await self.ws.close()
            if self.peer is not None:
                await self.peer.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.close_devices()
            self.emit_receive(heard_only=True)
        if opts.record is not None and self.mix is not None:
            write_wav(opts.record, self.mix.render())
        end = self.end
        if end is not None and end.code is not None:
            raise ClientError(f"server error {end.code}: {end.reason}", EXIT_REFUSED)
        if end is not None and not end.ok and not self.leaving:
            raise ClientError(f"session ended: {end.reason}")
        if self.session.answered and not self.media_connected:
            raise ClientError("media never connected (ICE/DTLS with the server failed)")
        return EXIT_OK


def _evdev_keys() -> tuple[str, ...]:
    from voice_client.ptt import DEFAULT_EVDEV_KEYS

    return DEFAULT_EVDEV_KEYS


def _need(path: Path | None) -> Path:
    if path is None:
        raise ClientError("no token: give --token or --token-file", 2)
    return path


async def run(opts: Options) -> int:
    """Join, talk and listen until ``duration`` (or a signal, or the server ends it).

    Returns the exit code; raises :class:`ClientError` for anything to report as one line.
    """
    host = urlsplit(opts.url).hostname or ""
    use_loopback = opts.loopback
    if use_loopback is None:
        use_loopback = await asyncio.to_thread(is_loopback_host, host)
    with contextlib.ExitStack() as stack:
        if use_loopback:
            stack.enter_context(loopback_candidates())
        if opts.opus_bitrate is not None:
            stack.enter_context(speech_opus(opts.opus_bitrate))
        receive = None
        if opts.low_latency:
            receive = stack.enter_context(low_latency_audio(opts.reorder_ms))
        client = _Client(opts)
        client.receive = receive
        stack.enter_context(turn_tls_context(client.tls))
        return await client.run()
