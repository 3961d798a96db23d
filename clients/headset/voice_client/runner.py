"""The asyncio layer of the headset client: moves messages between the WebSocket, the signaling
session (:mod:`voice_client.signaling`, sans I/O) and the peer (:mod:`voice_client.peer`).

It owns every task it starts (reader, pinger, slot recorders) and cancels and awaits them on the
way out; the recording is written after the peer is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from aiortc.mediastreams import MediaStreamTrack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice_client.loopback import is_loopback_host, loopback_candidates
from voice_client.opus import speech_opus
from voice_client.peer import ClientPeer, MicTrack, SlotRecorder
from voice_client.signaling import (
    Action,
    AnswerOffer,
    ClientSession,
    Emit,
    End,
    NeedToken,
    Send,
    SessionState,
    Warn,
)
from voice_client.wavio import Mix, write_wav

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "ClientError", "Options", "run"]

EXIT_OK = 0
EXIT_ERROR = 1  # could not connect, connection lost, media failed, cannot write the recording
EXIT_REFUSED = 3  # the server refused or ended the session with an error code

PING_INTERVAL = 20.0
LEAVE_TIMEOUT = 3.0
OPEN_TIMEOUT = 10.0


class ClientError(Exception):
    """A failure to report as one line; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class Options:
    url: str  # ws:// or wss:// signaling URL
    channel: str
    device_id: str
    token: str | None = None
    token_file: Path | None = None
    pcm: bytes = b""  # what to say, PCM48 mono
    loop: bool = False
    record: Path | None = None
    duration: float | None = None
    opus_bitrate: int | None = 24_000  # None: aiortc's own 96 kbps stereo
    loopback: bool | None = None  # None: when the server host is a loopback address
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
        self.t0 = time.monotonic()
        token = opts.token if opts.token is not None else read_token(_need(opts.token_file))
        self.session = ClientSession(token=token, channel=opts.channel, device_id=opts.device_id)
        self.mix = Mix() if opts.record is not None else None
        self.mic = MicTrack(opts.pcm, loop=opts.loop)
        self.peer: ClientPeer | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.ws: ClientConnection | None = None
        self.ended = asyncio.Event()
        self.end: End | None = None
        self.leaving = False
        self.media_connected = False

    # ------------------------------------------------------------ output

    def emit(self, event: dict[str, Any]) -> None:
        line = {"event": event["event"], "t": round(time.monotonic() - self.t0, 3)}
        line.update({k: v for k, v in event.items() if k != "event"})
        print(json.dumps(line, ensure_ascii=False), file=self.opts.out, flush=True)

    def warn(self, text: str) -> None:
        print(f"voice-client: warning: {text}", file=self.opts.err, flush=True)

    # ------------------------------------------------------------ actions

    async def do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                if self.ws is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await self.ws.send(action.text())
            elif isinstance(action, AnswerOffer):
                sdp = await self.answer(action.sdp)
                await self.do(self.session.answer(sdp))
            elif isinstance(action, Emit):
                self.emit(action.event)
            elif isinstance(action, Warn):
                self.warn(action.text)
            elif isinstance(action, NeedToken):
                await self.refresh_token(action.expires_at)
            elif isinstance(action, End):
                if self.end is None:
                    self.end = action
                self.ended.set()

    async def answer(self, sdp: str) -> str:
        if self.peer is None:
            self.peer = ClientPeer(self.mic, self.start_recorder)
            self.peer.pc.on("connectionstatechange", self.on_media_state)
        try:
            return await self.peer.answer(sdp)
        except ValueError as exc:  # aiortc raises ValueError for SDP it cannot use
            raise ClientError(f"cannot answer the server's offer: {exc}") from None

    def on_media_state(self) -> None:
        assert self.peer is not None
        state = self.peer.connection_state
        self.emit({"event": "media", "state": state})
        if state == "connected":
            self.media_connected = True
        if state == "failed" and not self.leaving:
            self.end = End(ok=False, reason="media connection failed")
            self.ended.set()

    def start_recorder(self, mid: str, track: MediaStreamTrack) -> None:
        recorder = SlotRecorder(mid, self.t0, self.mix)
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

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                await self.do(self.session.receive(text))
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

    async def ping(self) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL)
            await self.do(self.session.ping())

    async def run(self) -> int:
        opts = self.opts
        try:
            ws = await connect(opts.url, open_timeout=OPEN_TIMEOUT, max_size=1 << 20)
        except InvalidURI as exc:
            raise ClientError(f"bad server URL {opts.url}: {exc}", 2) from None
        except InvalidHandshake as exc:
            raise ClientError(f"cannot connect to {opts.url}: {exc}") from None
        except (OSError, TimeoutError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ClientError(f"cannot connect to {opts.url}: {reason or 'timed out'}") from None
        self.ws = ws
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await self.do(self.session.start())
            self.spawn(self.read(ws))
            self.spawn(self.ping())
            waits = [asyncio.ensure_future(self.ended.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waits, timeout=opts.duration, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if not self.ended.is_set():
                if self.session.state is SessionState.JOINING:
                    raise ClientError("the server did not answer the join")
                self.leaving = True
                await self.do(self.session.leave())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ended.wait(), LEAVE_TIMEOUT)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            await ws.close()
            if self.peer is not None:
                await self.peer.close()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
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
        return await _Client(opts).run()
