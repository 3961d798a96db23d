"""``voice-server transcriber``: the sidecar process.

Connects to the server's ``/internal/transcription`` WebSocket (reconnecting by itself, 0.5 s
doubling to 5 s), authenticates with the key derived from the deployment key in the shared data
directory, transcribes live bursts as their packets arrive, and every 2 s catches up from the
spool (:mod:`voice_server.transcribe.catchup`). Commits go straight to the call log in the shared
data directory; the server is told about partial results and commits (for live captions).
With a PostgreSQL ``--database-url`` the catch-up is a worker of the shared job queue
(:mod:`voice_server.transcribe.queueworker`): several sidecars claim bursts under leases and
commit them fenced, each exactly once. There the live link is optional (``server`` None): such
a worker needs no deployment key, only the database, and reads other nodes' clips through the
ClipStore; a linked one adds partial captions and live bursts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from voice_server.backends.seam import (
    is_postgres,
    open_call_log,
    open_clip_store,
    open_database,
    open_job_queue,
)
from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import Utterance
from voice_server.identity.derived import LINK_PURPOSE, derive_key, mac_hex
from voice_server.identity.keys import KEY_FILE, load_or_create_key
from voice_server.store.channels import ChannelStore
from voice_server.transcribe import phrases as phrase_lists
from voice_server.transcribe.catchup import CatchUp
from voice_server.transcribe.engine import Engine, Job
from voice_server.transcribe.phrase_store import open_store as open_phrase_store
from voice_server.transcribe.protocol import (
    VERSION,
    LinkError,
    dumps,
    parse_burst_end,
    parse_burst_start,
    parse_json,
    unpack_packets,
)
from voice_server.transcribe.queueworker import QueueWorker
from voice_server.transcribe.recognizer import RecognizerFactory

__all__ = ["Sidecar", "client_tls", "link_url"]

log = logging.getLogger(__name__)
CATCHUP_SECONDS = 2.0
OUTBOX = 1000
PHRASES_TTL = 30.0


class SidecarError(Exception):
    """A start-up problem to report as one line (exit 1)."""


def client_tls(
    server: str, ca_file: Path | None = None, server_name: str | None = None
) -> tuple[ssl.SSLContext | None, str | None]:
    """The TLS settings of the link to an ``https://`` server: the system's trust store, or the
    certificates of ``ca_file`` (a private CA, or the server's own self-signed certificate:
    a certificate given there is a trust anchor even when it is not a CA's); ``server_name``
    is the name checked in the server's certificate when it is not the URL's host (a sidecar
    that reaches the server on 127.0.0.1 but whose certificate names ``voice.city.example``)."""
    if urlsplit(server).scheme not in ("https", "wss"):
        if ca_file is not None or server_name is not None:
            raise ValueError("--ca-file and --tls-server-name need an https:// --server")
        return None, None
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"--ca-file {ca_file}: {exc}") from None
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return ctx, server_name


def link_url(server: str) -> str:
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"--server must be an http(s) URL, got {server!r}")
    return urlunsplit((scheme, parts.netloc, "/internal/transcription", "", ""))


class Sidecar:
    def __init__(
        self,
        server: str | None,
        data_dir: Path,
        factory: RecognizerFactory,
        *,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
        database_url: str | None = None,
    ) -> None:
        if server is None and not is_postgres(database_url):
            raise SidecarError("without a live link (--server) the database must be PostgreSQL")
        if server is not None and not (data_dir / KEY_FILE).is_file():
            raise SidecarError(
                f"no {KEY_FILE} in {data_dir}: --data-dir must be the server's data directory"
            )
        self.url = link_url(server) if server is not None else None
        self.tls = tls
        self.server_name = server_name
        self.data_dir = data_dir
        self.key = (
            derive_key(load_or_create_key(data_dir), LINK_PURPOSE) if server is not None else b""
        )
        db = open_database(database_url, data_dir)
        self.calllog = open_call_log(database_url, data_dir, db)
        self.channels = ChannelStore(db)
        self.phrase_store = open_phrase_store(db, data_dir)  # PostgreSQL: shared
        self.factory = factory
        self._phrases: dict[str, tuple[float, list[str] | None]] = {}
        queue = open_job_queue(db) if is_postgres(database_url) else None
        self.engine = Engine(
            factory,
            self.calllog,
            workers=os.cpu_count() or 2,
            phrases_of=self.phrases_of,
            on_partial=self._partial,
            on_committed=self._committed,
            queue=queue,
        )
        self.catchup = CatchUp(data_dir, self.engine, self.calllog)
        self.worker: QueueWorker | None = None
        if queue is not None:
            name = f"{socket.gethostname()}:{os.getpid()}"
            clips = open_clip_store(db, data_dir)
            self.worker = QueueWorker(
                data_dir, self.engine, self.calllog, queue, name=name, clips=clips
            )
            self.catchup = self.worker.catchup
        self.connected = False
        self.down_reason: str | None = None  # logged once per change, not once per retry
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._live: dict[int, Job] = {}

    # ------------------------------------------------------------------ engine callbacks
    def phrases_of(self, channel: str) -> list[str] | None:
        """The channel's list (Vosk: a grammar, only where a channel sets one), or for an engine
        that takes them (Whisper) the deployment's list ∪ the channel's
        (:mod:`voice_server.transcribe.phrases`); cached for :data:`PHRASES_TTL` seconds."""
        cached = self._phrases.get(channel)
        now = time.monotonic()
        if cached is not None and now - cached[0] < PHRASES_TTL:
            return cached[1]
        ch = self.channels.get(channel)
        raw = ch.settings.get("phrases") if ch is not None else None
        own = [str(p) for p in raw if isinstance(p, str) and p.strip()] if raw else None
        wide = getattr(self.factory, "uses_deployment_phrases", False)
        deployment = self.phrase_store.load() if wide else []
        phrases = phrase_lists.for_engine(wide, deployment, own)
        self._phrases[channel] = (now, phrases)
        return phrases

    def _send_threadsafe(self, msg: dict[str, Any]) -> None:
        loop, outbox = self._loop, self._outbox
        if loop is None or outbox is None:
            return

        def put() -> None:
            with contextlib.suppress(asyncio.QueueFull):
                outbox.put_nowait(dumps(msg))  # a full outbox drops captions, never blocks

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(put)

    def _partial(self, meta: BurstMeta, text: str) -> None:
        self._send_threadsafe(
            {
                "type": "partial",
                "id": meta.id,
                "channel": meta.channel,
                "speaker_id": meta.speaker_id,
                "text": text[:2000],
            }
        )

    def _committed(self, utterance: Utterance) -> None:
        self._send_threadsafe({"type": "committed", "utterance": utterance.as_api(None)})
        self.catchup.move(utterance.id)  # usually the file is there already; else next pass

    # ------------------------------------------------------------------ run
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue(OUTBOX)
        tasks = [asyncio.create_task(self._catchup_forever(), name="catchup")]
        if self.url is not None:  # the live link: partial captions (optional on PostgreSQL)
            tasks.append(asyncio.create_task(self._link_forever(), name="link"))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(self.engine.close)

    async def _catchup_forever(self) -> None:
        if self.worker is not None:
            stop = threading.Event()
            try:
                await asyncio.to_thread(self.worker.run, stop)
            finally:
                stop.set()  # cancelled: the thread ends after its current wait
            return
        while True:
            try:
                await asyncio.to_thread(self.catchup.step)
            except Exception:
                log.exception("spool catch-up failed")
            await asyncio.sleep(CATCHUP_SECONDS)

    def _link_down(self, reason: str) -> None:
        """Log why the link is down when that reason is new (not on every retry)."""
        if reason != self.down_reason:
            self.down_reason = reason
            log.warning(
                "transcriber link down (retrying; spool catch-up still commits): %s",
                reason,
                extra={"server": self.url, "reason": reason},
            )

    async def _link_forever(self) -> None:
        assert self.url is not None
        url = self.url
        delay = 0.5
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            kwargs["ssl"] = self.tls
            if self.server_name:
                kwargs["server_hostname"] = self.server_name
        while True:
            try:
                async with connect(url, max_size=1 << 20, open_timeout=5, **kwargs) as ws:
                    delay = 0.5
                    await self._session(ws)
                    self._link_down("the server closed the link")
            except ssl.SSLError as exc:
                detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
                self._link_down(f"TLS: {detail} (--ca-file, --tls-server-name)")
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ConnectionClosed) as exc:
                self._link_down(f"{type(exc).__name__}: {str(exc)[:160]}")
            except LinkError as exc:
                self._link_down(f"refused: {exc}")
            finally:
                self.connected = False
                for job in self._live.values():
                    if not job.ending:
                        self.engine.abort(job)  # the spool has it
                self._live.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _session(self, ws: ClientConnection) -> None:
        challenge = parse_json(str(await asyncio.wait_for(ws.recv(), 5)))
        nonce = challenge.get("nonce")
        if challenge.get("type") != "challenge" or not isinstance(nonce, str):
            raise LinkError("expected a challenge")
        hello = {
            "type": "hello",
            "v": VERSION,
            "mac": mac_hex(self.key, nonce),
            "model": self.factory.name,
            "language": self.factory.language,
            "engine": getattr(self.factory, "engine", "vosk"),
            "partials": getattr(self.factory, "partials", True),
            "client": f"transcriber pid {os.getpid()}",
        }
        await ws.send(dumps(hello))
        welcome = parse_json(str(await asyncio.wait_for(ws.recv(), 5)))
        if welcome.get("type") != "welcome":
            raise LinkError("not welcomed")
        self.connected = True
        self.down_reason = None
        log.info("transcriber linked", extra={"server": self.url, "model": self.factory.name})
        sender = asyncio.create_task(self._send_forever(ws))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self._packets(message)
                else:
                    self._control(parse_json(message))
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def _send_forever(self, ws: ClientConnection) -> None:
        assert self._outbox is not None
        while True:
            text = await self._outbox.get()
            await ws.send(text)

    def _control(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        try:
            if kind == "burst_start":
                no, meta = parse_burst_start(msg)  # channel names checked there
                job = self.engine.job(meta, live=True)
                if job is not None:
                    self._live[no] = job
            elif kind == "burst_end":
                end = parse_burst_end(msg)
                job = self._live.pop(end.no, None)
                if job is None:
                    return
                if end.complete:
                    self.engine.end(job, end.ended_ms)
                else:
                    self.engine.abort(job)
        except LinkError:
            return

    def _packets(self, frame: bytes) -> None:
        try:
            records = unpack_packets(frame)
        except LinkError:
            return
        for no, packet in records:
            job = self._live.get(no)
            if job is not None:
                self.engine.push_rtp(job, packet)


def run_sidecar(sidecar: Sidecar) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await sidecar.run(stop)

    asyncio.run(main())
    return 0


__all__ += ["SidecarError", "run_sidecar"]
