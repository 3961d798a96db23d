"""What the transcription benchmarks share: the server and sidecar as child processes, a
voice-client talking a WAV (with simulated uplink loss), and the utterances a talker left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voice_server.bench.httpsync import HttpError
from voice_server.bench.ports import free_port
from voice_server.calllog.model import SearchQuery
from voice_server.calllog.sqlite import SqliteCallLog

__all__ = ["cli", "free_port", "lossy_sender", "process", "run_utterances", "talk", "wait"]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "voice_server.cli", *args]


@contextlib.contextmanager
def process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(HttpError):
            if predicate():
                return
        time.sleep(0.2)
    raise SystemExit(f"bench transcribe: timed out waiting for {what}")


@contextlib.contextmanager
def lossy_sender(loss: float, seed: int) -> Iterator[None]:
    """Drop ``loss`` of the outgoing RTP (not RTCP) packets of aiortc peers in this process."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtp import is_rtcp

    original = RTCDtlsTransport._send_rtp
    rng = random.Random(seed)

    async def send(self: Any, data: bytes) -> None:
        if loss > 0 and not is_rtcp(data) and rng.random() < loss:
            return
        await original(self, data)

    RTCDtlsTransport._send_rtp = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        RTCDtlsTransport._send_rtp = original  # type: ignore[method-assign]


def talk(url: str, token: str, sub: str, wav: Path, seconds: float, loss: float, seed: int) -> None:
    from voice_client.runner import Options, run
    from voice_client.signaling import websocket_url
    from voice_client.wavio import read_pcm48

    opts = Options(
        url=websocket_url(url),
        channel="bench",
        device_id=sub,
        token=token,
        pcm=read_pcm48(wav),
        duration=seconds,
        out=open(os.devnull, "w"),
    )
    with lossy_sender(loss, seed):
        asyncio.run(run(opts))


def run_utterances(log: SqliteCallLog, sub: str) -> list[Any]:
    page = log.search(SearchQuery(speaker=sub, limit=200))
    return sorted(page.items, key=lambda u: u.start_ms)
