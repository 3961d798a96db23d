"""Baseline for ``bench forward``: an audio relay built the usual aiortc way.

The relay (``relay_server.py``: aiortc ``MediaRelay``, one decode per speaker and one Opus
re-encode per listener) runs in its own child process so that its CPU can be read from
``/proc/<pid>/stat`` apart from the clients. This module is the driver: it starts that process,
runs the clients in the calling process — S speaker peers sending a 400 Hz tone
(``tone.ToneTrack``) and L listener peers, each with S receive-only transceivers, that drain the
decoded frames — and signals through the child's stdin/stdout (offer in, answer out).

What is measured, over a steady-state window after every peer is connected, the speakers started
and ``warmup`` seconds passed:

- relay CPU seconds: ``utime + stime`` of the relay process from ``/proc`` (``procstat.CpuMeter``);
- packets: RTP packets the listeners received from the relay, from the listeners'
  ``RTCRtpReceiver.getStats()`` ``inbound-rtp`` ``packetsReceived`` (counted on arrival, before
  the jitter buffer), difference between the window's start and end;
- ``cpu_us_per_packet`` = relay CPU µs ÷ packets; ``cpu_cores`` = relay CPU s ÷ window s;
- ``loss`` = 1 − packets ÷ (S × L × 50 packets/s × window s), floored at 0; ``sustained`` is
  ``loss <= 1 %``. Past saturation the relay's queues grow and the CPU per *delivered* packet is
  no longer a fair figure: compare only sustained runs.

Stock aiortc 1.16 spends about half of the relay's CPU in ``aiortc.rtp.compute_audio_level_dbov``
(a Python loop over the whole 23 KB plane buffer of each decoded frame, once per listener).
``fast_audio_level=True`` swaps in a C equivalent in the relay process to show the cost of the
decode-and-re-encode design itself; the default measures aiortc as shipped.

Measured on the shared 2-core machine (medians of 3 runs, 10 s windows): stock aiortc at 2 × 15
saturates (≈0.9 core, the event-loop thread is the bottleneck) and loses ≈47 % of packets at
≈1.2 ms CPU per delivered packet; it sustains about 2 × 6 (≈1.3 ms per packet, 0.76 core). With
``fast_audio_level`` 2 × 15 is sustained at ≈0.4 ms per packet (0.62 core).

Every ICE candidate is 127.0.0.1 (``loopback.py``); no STUN server is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voice_client.loopback import loopback_candidates
from voice_server.bench.procstat import CpuMeter, sample
from voice_server.bench.tone import PACKETS_PER_SECOND, ToneTrack

__all__ = ["main", "run_relay_baseline"]

logger = logging.getLogger(__name__)

MODULE = "voice_server.bench.relay_baseline"
SERVER_MODULE = "voice_server.bench.relay_server"
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding voice_server/
CONNECT_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
SUSTAINED_MAX_LOSS = 0.01


def _new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class _RelayProcess:
    """The relay child process and its JSON-line request channel."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next_id = 0

    @classmethod
    async def start(cls, fast_audio_level: bool) -> _RelayProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH")) if p)
        flags = ["--fast-audio-level"] if fast_audio_level else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            SERVER_MODULE,
            *flags,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 20,
        )
        self = cls(proc)
        try:
            hello = await self._read()
            if hello.get("op") != "ready":
                raise RuntimeError(f"relay process did not start: {hello}")
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(REQUEST_TIMEOUT):
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"relay process exited (code {self.proc.returncode})")
        obj: dict[str, Any] = json.loads(line)
        return obj

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self._next_id += 1
        line = json.dumps({"op": op, "id": self._next_id, **fields}) + "\n"
        self.proc.stdin.write(line.encode())
        await self.proc.stdin.drain()
        answer = await self._read()
        if "error" in answer:
            raise RuntimeError(f"relay {op} failed: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.write(b'{"op": "quit"}\n')
                await self.proc.stdin.drain()
                self.proc.stdin.close()
            try:
                async with asyncio.timeout(15):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


class _Clients:
    """The driver's speaker and listener peers."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.speakers: list[RTCPeerConnection] = []
        self.listeners: list[RTCPeerConnection] = []
        self.frames = 0
        self._connected: list[asyncio.Event] = []
        self._drains: list[asyncio.Task[None]] = []

    def _pc(self) -> RTCPeerConnection:
        pc = _new_pc()
        connected = asyncio.Event()
        self._connected.append(connected)

        def on_state() -> None:
            if pc.connectionState in ("connected", "failed", "closed"):
                connected.set()

        pc.on("connectionstatechange", on_state)
        return pc

    async def _negotiate(self, relay: _RelayProcess, pc: RTCPeerConnection, role: str) -> None:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await relay.request(role, sdp=pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))

    async def add_speaker(self, relay: _RelayProcess) -> None:
        pc = self._pc()
        self.speakers.append(pc)
        pc.addTransceiver(ToneTrack(self.gate), direction="sendonly")
        await self._negotiate(relay, pc, "speaker")

    async def add_listener(self, relay: _RelayProcess, speakers: int) -> None:
        pc = self._pc()
        self.listeners.append(pc)
        for _ in range(speakers):
            pc.addTransceiver("audio", direction="recvonly")
        pc.on("track", self._on_track)
        await self._negotiate(relay, pc, "listener")

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._drains.append(asyncio.create_task(self._drain(track)))

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames += 1

    async def wait_connected(self) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            for event in self._connected:
                await event.wait()
        bad = [pc.connectionState for pc in self.speakers + self.listeners]
        if any(state != "connected" for state in bad):
            raise RuntimeError(f"peers failed to connect: {bad}")

    async def packets_received(self) -> int:
        total = 0
        for pc in self.listeners:
            for receiver in pc.getReceivers():
                for s in (await receiver.getStats()).values():
                    if s.type == "inbound-rtp":
                        total += int(s.packetsReceived)
        return total

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                pcs = self.speakers + self.listeners
                await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
        for task in self._drains:
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)


async def _run(
    speakers: int, listeners: int, seconds: float, warmup: float, fast_audio_level: bool
) -> dict[str, Any]:
    relay = await _RelayProcess.start(fast_audio_level)
    clients = _Clients()
    try:
        for _ in range(speakers):
            await clients.add_speaker(relay)
        for _ in range(listeners):
            await clients.add_listener(relay, speakers)
        await clients.wait_connected()
        clients.gate.set()
        await asyncio.sleep(warmup)

        relay_sent_0 = (await relay.request("stats"))["sent"]
        packets_0 = await clients.packets_received()
        frames_0 = clients.frames
        relay_cpu = CpuMeter(relay.pid)
        driver_cpu = CpuMeter()
        relay_cpu.start()
        driver_cpu.start()
        await asyncio.sleep(seconds)
        cpu = relay_cpu.stop()
        driver = driver_cpu.stop()
        packets = await clients.packets_received() - packets_0
        frames = clients.frames - frames_0
        relay_sent = (await relay.request("stats"))["sent"] - relay_sent_0
        relay_proc = sample(relay.pid)
    finally:
        await clients.close()
        await relay.stop()

    if packets <= 0:
        raise RuntimeError("the relay delivered no packets in the measurement window")
    expected = speakers * listeners * PACKETS_PER_SECOND * cpu.wall_seconds
    return {
        "speakers": speakers,
        "listeners": listeners,
        "seconds": seconds,
        "cpu_us_per_packet": cpu.cpu_seconds * 1e6 / packets,
        "cpu_cores": cpu.cores,
        "packets": packets,
        "loss": max(0.0, 1.0 - packets / expected),
        # context, not part of the comparison
        "sustained": packets >= (1.0 - SUSTAINED_MAX_LOSS) * expected,
        "audio_level": "fast" if fast_audio_level else "aiortc",
        "warmup_seconds": warmup,
        "window_seconds": cpu.wall_seconds,
        "expected_packets": round(expected),
        "relay_sent_packets": relay_sent,
        "listener_frames_decoded": frames,
        "relay_cpu_seconds": cpu.cpu_seconds,
        "relay_rss_mb": relay_proc.rss_bytes / 1e6,
        "relay_threads": relay_proc.threads,
        "driver_cpu_cores": driver.cores,
    }


def run_relay_baseline(
    speakers: int = 2,
    listeners: int = 15,
    seconds: float = 10.0,
    warmup: float = 3.0,
    *,
    fast_audio_level: bool = False,
) -> dict[str, Any]:
    """Run the MediaRelay baseline at ``speakers`` × ``listeners`` and return its figures.

    Blocks for about ``warmup + seconds`` plus connection setup (a few seconds). ``seconds`` is
    the steady-state measurement window; must be called with no event loop running.
    ``fast_audio_level`` replaces aiortc's pure-Python per-frame audio-level loop in the relay
    process by a C one (see ``_fast_audio_level_dbov``), to show what the decode/encode
    architecture costs without that aiortc inefficiency; the default measures stock aiortc.
    """
    if speakers < 1 or listeners < 1 or seconds <= 0 or warmup < 0:
        raise ValueError("need speakers >= 1, listeners >= 1, seconds > 0, warmup >= 0")
    with loopback_candidates():
        return asyncio.run(_run(speakers, listeners, seconds, warmup, fast_audio_level))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="Measure an aiortc MediaRelay audio relay (CPU per listener-packet).",
    )
    parser.add_argument("--speakers", type=int, default=2)
    parser.add_argument("--listeners", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds skipped first")
    parser.add_argument(
        "--fast-audio-level",
        action="store_true",
        help="replace aiortc's pure-Python audio-level loop by a C one in the relay",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result = run_relay_baseline(
        args.speakers,
        args.listeners,
        args.seconds,
        args.warmup,
        fast_audio_level=args.fast_audio_level,
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
