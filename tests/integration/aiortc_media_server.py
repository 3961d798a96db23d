"""A stand-in server for the headset client's interop test: real signaling and real media.

Run as ``python tests/integration/aiortc_media_server.py``. It prints its WebSocket port, serves
one participant the way the voice server does (join -> joined -> server-made offer with mid 0
recvonly and mids 1..3 sendonly -> answer -> talk events, pings answered -> leave -> left),
plays an 880 Hz tone on slot 1, and after ``left`` prints one JSON report of what it heard on
mid 0: frame count, zero-crossing rate, RMS, and the RFC 6464 levels seen on the wire.

It is NOT the voice server's media plane: aiortc cannot be ICE-lite, so the offer has aiortc's
own candidates, and it decodes audio. It proves the client interoperates with a standard peer.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import struct
import sys
from array import array
from typing import Any

import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from websockets.asyncio.server import ServerConnection, serve

from voice_client.loopback import loopback_candidates
from voice_client.peer import MicTrack

BOB = {"id": "s-bob", "sub": "u2", "name": "Bob", "device_id": "phone-2", "talking": False}
ALICE = {"id": "s-alice", "sub": "u1", "name": "Alice", "device_id": "hs-1", "talking": False}


def tone(freq: float, seconds: float, amp: int = 8000) -> bytes:
    n = int(48000 * seconds)
    return b"".join(
        struct.pack("<h", int(amp * math.sin(2 * math.pi * freq * i / 48000))) for i in range(n)
    )


class Idle(MediaStreamTrack):
    """A slot nobody talks on: yields nothing."""

    kind = "audio"

    async def recv(self) -> Any:
        await asyncio.Future()


class Heard:
    def __init__(self) -> None:
        self.frames = 0
        self.samples = array("h")
        self.levels: list[int] = []

    async def consume(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame)
            self.frames += 1
            pcm = array("h", bytes(frame.planes[0])[: frame.samples * 2 * 2])
            self.samples.extend(pcm[0::2])  # left channel

    def report(self) -> dict[str, Any]:
        s = self.samples[48000:]  # skip the first second (start-up, jitter buffer)
        zc = sum(1 for a, b in itertools.pairwise(s) if (a < 0) != (b < 0))
        rms = math.sqrt(sum(v * v for v in s) / len(s)) if s else 0.0
        seconds = len(s) / 48000
        return {
            "frames": self.frames,
            "seconds": seconds,
            "zero_crossings_per_s": zc / seconds if seconds else 0.0,
            "rms": rms,
            "levels": self.levels,
        }


async def session(ws: ServerConnection) -> None:
    join = json.loads(await ws.recv())
    assert join["type"] == "join", join
    await ws.send(
        json.dumps(
            {
                "v": 1,
                "type": "joined",
                "session_id": "s-alice",
                "resumed": False,
                "channel": {"name": join["channel"], "display_name": "Ops"},
                "you": ALICE,
                "participants": [ALICE, BOB],
                "grace_seconds": 10,
                "token_expires_at": 1_900_000_000,
            }
        )
    )
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    heard = Heard()
    tasks: list[asyncio.Task[None]] = []
    mic = pc.addTransceiver("audio", direction="recvonly")  # mid 0: the participant's mic
    pc.addTransceiver(MicTrack(tone(880, 1.0), loop=True), direction="sendonly")  # slot 1
    pc.addTransceiver(Idle(), direction="sendonly")  # slot 2
    pc.addTransceiver(Idle(), direction="sendonly")  # slot 3

    # record the RFC 6464 level of every packet on mid 0 (private hook: test only)
    original = mic.receiver._handle_rtp_packet

    async def spy(packet: Any, arrival_time_ms: int) -> None:
        if packet.extensions.audio_level is not None:
            heard.levels.append(packet.extensions.audio_level[1])
        await original(packet, arrival_time_ms)

    mic.receiver._handle_rtp_packet = spy  # type: ignore[method-assign]

    await pc.setLocalDescription(await pc.createOffer())
    await ws.send(json.dumps({"v": 1, "type": "offer", "sdp": pc.localDescription.sdp}))
    answer = json.loads(await ws.recv())
    assert answer["type"] == "answer", answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
    # the remote track of mid 0 exists once the answer says the client sends on it
    tasks.append(asyncio.ensure_future(heard.consume(mic.receiver.track)))
    await ws.send(json.dumps({"v": 1, "type": "talk_started", "speaker": BOB, "slot": 1}))
    async for text in ws:
        msg = json.loads(text)
        if msg["type"] == "ping":  # as the voice server does: the client calls silence dead
            await ws.send(json.dumps({"v": 1, "type": "pong", "id": msg.get("id")}))
        elif msg["type"] == "leave":
            await ws.send(json.dumps({"v": 1, "type": "talk_stopped", "speaker": BOB, "slot": 1}))
            await ws.send(json.dumps({"v": 1, "type": "left", "reason": "left"}))
            break
    await pc.close()
    for t in tasks:
        t.cancel()
    print(json.dumps(heard.report()), flush=True)
    done.set()


done = asyncio.Event()


async def main() -> None:
    with loopback_candidates():
        async with serve(session, "127.0.0.1", 0) as server:
            print(next(iter(server.sockets)).getsockname()[1], flush=True)
            await asyncio.wait_for(done.wait(), 60)


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
