"""Capacity phase of ``bench transcribe``: how many talkers one sidecar transcribes in real time.

The bench plays the server's end of the transcriber link (same protocol, same authentication:
:mod:`voice_server.transcribe.link_server`) and streams N simultaneous bursts of Opus packets at
real-time pace, as RTP, to a real ``voice-server transcriber`` process: a different burst for
every talker of every step (:mod:`voice_server.bench.transcribe_speech`; a recognizer decodes
audio it has decoded before far more cheaply, so replaying one clip would flatter the figure).
A step passes when every burst is committed and the p95 of burst end → ``committed`` message is
≤ 1 s; N goes up until a step fails. Meanwhile ``/proc`` gives the sidecar's CPU and RSS and
what the rest of the machine used (the machine is shared: a step whose ``others_cores`` is high
had less than two cores). Only the media plane is missing here: its cost per packet is measured
by ``bench forward`` and is tiny next to recognition.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from voice_server.bench.procstat import CpuMeter, read_machine_busy_seconds, read_rss_bytes
from voice_server.bench.stats import percentile
from voice_server.calllog.model import new_burst_id
from voice_server.identity.derived import LINK_PURPOSE, derive_key, mac_hex
from voice_server.media.rtp import build_rtp
from voice_server.transcribe.protocol import dumps, pack_packets, parse_json

__all__ = ["ReplayLink"]


class ReplayLink:
    def __init__(self, key: bytes) -> None:
        self._key = derive_key(key, LINK_PURPOSE)
        self.ws: ServerConnection | None = None
        self.connected = asyncio.Event()
        self.committed: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def handler(self, ws: ServerConnection) -> None:
        nonce = secrets.token_hex(16)
        await ws.send(dumps({"type": "challenge", "v": 1, "nonce": nonce}))
        hello = parse_json(str(await ws.recv()))
        if hello.get("mac") != mac_hex(self._key, nonce):
            await ws.close(4401)
            return
        await ws.send(dumps({"type": "welcome", "v": 1}))
        self.ws = ws
        self.connected.set()
        with contextlib.suppress(ConnectionClosed):  # the sidecar is stopped at the end
            async for message in ws:
                if isinstance(message, str):
                    msg = parse_json(message)
                    if msg["type"] == "committed":
                        self.committed[msg["utterance"]["id"]] = time.monotonic()
                        self.changed.set()

    async def step(self, streams: list[list[bytes]], pid: int) -> dict[str, Any]:
        """One burst per talker, all at once: ``streams[i]`` is talker i's Opus packets."""
        ws = self.ws
        assert ws is not None
        talkers = len(streams)
        ids: list[str] = []
        now_ms = int(time.time() * 1000)
        for i in range(talkers):
            burst_id = new_burst_id(now_ms + i)
            ids.append(burst_id)
            await ws.send(
                dumps(
                    {
                        "type": "burst_start",
                        "burst": i + 1,
                        "id": burst_id,
                        "channel": "bench",
                        "speaker_id": f"talker-{i}",
                        "speaker_name": f"Talker {i}",
                        "start_ms": now_ms + i,
                    }
                )
            )
        cpu, me = CpuMeter(pid), CpuMeter()
        busy0 = read_machine_busy_seconds()
        cpu.start()
        me.start()
        t0 = time.monotonic()
        for k in range(max(len(s) for s in streams)):
            records = [
                (
                    i + 1,
                    build_rtp(payload_type=111, seq=k, timestamp=k * 960, ssrc=i + 1, payload=s[k]),
                )
                for i, s in enumerate(streams)
                if k < len(s)
            ]
            await ws.send(pack_packets(records))
            delay = t0 + (k + 1) * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        ended: dict[str, float] = {}
        for i, burst_id in enumerate(ids):
            ended[burst_id] = time.monotonic()
            await ws.send(
                dumps(
                    {
                        "type": "burst_end",
                        "burst": i + 1,
                        "id": burst_id,
                        "complete": True,
                        "ended_ms": int(time.time() * 1000),
                    }
                )
            )
        deadline = time.monotonic() + 60
        while not all(b in self.committed for b in ids):
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        reading, mine = cpu.stop(), me.stop()
        busy = read_machine_busy_seconds() - busy0
        rss = read_rss_bytes(pid)
        lat = [(self.committed[b] - ended[b]) * 1000 for b in ids if b in self.committed]
        p95 = percentile(lat, 95) if lat else None
        ok = len(lat) == talkers and p95 is not None and p95 <= 1000
        audio = sum(len(s) for s in streams) * 0.02
        return {
            "talkers": talkers,
            "committed": len(lat),
            "latency_ms_p95": round(p95, 1) if p95 is not None else None,
            "latency_ms_max": round(max(lat), 1) if lat else None,
            "sidecar_cores": round(reading.cores, 3),
            "sidecar_cpu_per_audio_second": round(reading.cpu_seconds / audio, 3),
            "sidecar_rss_mb": round(rss / 2**20),
            "others_cores": round(
                max(0.0, busy - reading.cpu_seconds - mine.cpu_seconds) / reading.wall_seconds, 2
            ),
            "realtime": ok,
        }


def _bursts(source: Any, n: int) -> list[list[bytes]]:
    return [source.burst() for _ in range(n)]


async def run_capacity(
    key: bytes,
    port: int,
    source: Any,
    start_sidecar: Any,
    steps: list[int],
    warmup: int = 0,
    warmup_rounds: int = 1,
) -> dict[str, Any]:
    """``source.burst()`` gives a new burst's packets each call. First ``warmup_rounds`` rounds
    of ``warmup`` simultaneous bursts, unmeasured: the sidecar's recognizer pool then holds that
    many recognizers that have decoded some speech, as in a sidecar that has been running (a
    fresh recognizer costs 2-3x more: :mod:`voice_server.transcribe.recognizer`); their figures
    are reported as ``warmup``. ``cpu_per_audio_second`` is the median over the steps of the
    sidecar's CPU per second of audio, and ``talkers_per_2_free_cores`` = 2 / that: how many
    talkers two cores doing nothing else would hold at that cost (an upper bound, no headroom)."""
    link = ReplayLink(key)
    async with serve(link.handler, "127.0.0.1", port, max_size=1 << 20):
        proc = start_sidecar()
        try:
            await asyncio.wait_for(link.connected.wait(), 90)
            results = []
            best = 0
            warm: list[dict[str, Any]] = []
            for _ in range(warmup_rounds if warmup > 0 else 0):
                streams = await asyncio.to_thread(_bursts, source, warmup)
                warm.append(await link.step(streams, proc.pid))
                await asyncio.sleep(1.0)
            for n in steps:
                streams = await asyncio.to_thread(_bursts, source, n)
                result = await link.step(streams, proc.pid)
                results.append(result)
                if not result["realtime"]:
                    break
                best = n
                await asyncio.sleep(1.0)
            costs = sorted(r["sidecar_cpu_per_audio_second"] for r in results)
            cost = costs[len(costs) // 2] if costs else None
            return {
                "realtime_talkers": best,
                "steps": results,
                "warmup": warm,
                "cpu_per_audio_second": cost,
                "talkers_per_2_free_cores": round(2 / cost, 1) if cost else None,
            }
        finally:
            proc.terminate()
            with contextlib.suppress(Exception):
                proc.wait(10)
