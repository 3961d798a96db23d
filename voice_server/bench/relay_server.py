"""The relay under test in the ``relay_baseline`` benchmark, run as its own process.

``python -m voice_server.bench.relay_server [--fast-audio-level]`` holds one aiortc
``RTCPeerConnection`` per participant. Each speaker's incoming audio track is fanned out with
``aiortc.contrib.media.MediaRelay`` to a sending transceiver on every listener's connection: per
speaker packet one decode (the speaker's receiver) and one Opus encode per listener (each
listener's ``RTCRtpSender`` re-encodes the relayed decoded frame). This is the usual way to build
a relay with aiortc (its ``server`` example does the same).

Signaling is one JSON object per line: requests on stdin, replies on the *original* stdout (fd 1
is redirected to stderr so nothing else can corrupt the channel). The first line out is
``{"op": "ready", "pid": …}``; then ``{"op": "speaker"|"listener", "id": n, "sdp": offer}`` →
``{"id": n, "sdp": answer}``, ``{"op": "stats"}`` → ``{"sent": packets sent to listeners}``,
``{"op": "quit"}`` or end of stdin → close every connection and exit. Errors come back as
``{"id": n, "error": "…"}``. Speakers must be added before listeners.

ICE gathers 127.0.0.1 only (``loopback.py``); no STUN server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import aiortc.rtp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

from voice_client.loopback import install_loopback_candidates

__all__ = ["RelayServer", "fast_audio_level_dbov", "main", "serve"]

logger = logging.getLogger(__name__)


class RelayServer:
    """MediaRelay from every speaker's track to every listener's connection."""

    def __init__(self) -> None:
        self._relay = MediaRelay()
        self._speaker_tracks: list[MediaStreamTrack] = []
        self._speakers: list[RTCPeerConnection] = []
        self._listeners: list[RTCPeerConnection] = []

    @staticmethod
    def _new_pc() -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _answer(self, pc: RTCPeerConnection) -> str:
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def add_speaker(self, sdp: str) -> str:
        """Accept a speaker's offer (one sending audio track); return the answer SDP."""
        pc = self._new_pc()
        self._speakers.append(pc)
        tracks: list[MediaStreamTrack] = []
        pc.on("track", tracks.append)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        audio = [t for t in tracks if t.kind == "audio"]
        if not audio:
            raise RuntimeError("speaker offer carried no audio track")
        self._speaker_tracks.extend(audio)
        return await self._answer(pc)

    async def add_listener(self, sdp: str) -> str:
        """Accept a listener's offer (receive-only audio transceivers, one per speaker) and
        attach a ``MediaRelay`` proxy of every speaker's track; return the answer SDP."""
        pc = self._new_pc()
        self._listeners.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        for track in self._speaker_tracks:
            pc.addTrack(self._relay.subscribe(track))
        return await self._answer(pc)

    async def stats(self) -> dict[str, int]:
        """RTP packets sent so far to all listeners (``outbound-rtp`` ``packetsSent``)."""
        sent = 0
        for pc in self._listeners:
            for sender in pc.getSenders():
                for s in (await sender.getStats()).values():
                    if s.type == "outbound-rtp":
                        sent += int(s.packetsSent)
        return {"sent": sent}

    async def close(self) -> None:
        pcs = self._speakers + self._listeners
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)


async def serve(proto_fd: int) -> None:
    """Answer JSON-line requests from stdin, replying on ``proto_fd``, until ``quit`` or EOF."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    out = os.fdopen(proto_fd, "w", encoding="utf-8")

    def reply(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    server = RelayServer()
    reply({"op": "ready", "pid": os.getpid()})
    try:
        while line := await reader.readline():
            msg = json.loads(line)
            op = msg.get("op")
            result: dict[str, Any]
            try:
                if op == "speaker":
                    result = {"sdp": await server.add_speaker(msg["sdp"])}
                elif op == "listener":
                    result = {"sdp": await server.add_listener(msg["sdp"])}
                elif op == "stats":
                    result = await server.stats()
                elif op == "quit":
                    break
                else:
                    result = {"error": f"unknown op {op!r}"}
            except Exception as exc:  # report to the driver, keep serving
                logger.exception("relay request %s failed", op)
                result = {"error": repr(exc)}
            reply({"id": msg.get("id"), **result})
    finally:
        await server.close()
        out.close()


def fast_audio_level_dbov(frame: AudioFrame) -> int:
    """RFC 6465 audio level computed in C over the frame's valid s16 samples only.

    Stand-in for ``aiortc.rtp.compute_audio_level_dbov``, which every ``RTCRtpSender`` calls on
    every audio frame it encodes and which squares every 16-bit word of
    ``bytes(frame.planes[0])`` in a Python loop. A decoded Opus frame's plane is allocated for
    120 ms stereo (23,040 bytes) though it holds 20 ms, so that costs ~0.5 ms CPU per frame, per
    listener, on the event-loop thread. This one is a true RMS over all channels (aiortc divides
    a stereo sum by the per-channel sample count, reading 3 dB louder); the value does not
    matter to the benchmark.
    """
    channels = len(frame.layout.channels)
    valid = bytes(frame.planes[0])[: frame.samples * channels * 2]
    if not valid:
        return -127
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop  # stdlib until 3.13; C speed

        rms = audioop.rms(valid, 2) / 32767
    if rms <= 0:
        return -127
    return round(min(0.0, max(-127.0, 20 * math.log10(rms))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voice_server.bench.relay_server",
        description="aiortc MediaRelay relay driven by JSON lines on stdin/stdout.",
    )
    parser.add_argument(
        "--fast-audio-level",
        action="store_true",
        help="replace aiortc's pure-Python audio-level loop by a C one",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The protocol owns the original stdout; anything else printing to fd 1 goes to stderr.
    proto_fd = os.dup(1)
    os.dup2(2, 1)
    install_loopback_candidates()
    if args.fast_audio_level:
        aiortc.rtp.compute_audio_level_dbov = fast_audio_level_dbov
    asyncio.run(serve(proto_fd))
    return 0


if __name__ == "__main__":
    sys.exit(main())
