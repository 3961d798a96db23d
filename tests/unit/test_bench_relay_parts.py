"""Small pieces of the relay baseline: loopback ICE patch, tone source, audio-level stand-in."""

from __future__ import annotations

import asyncio
import time

import aioice.ice
from aiortc import rtp

from voice_client.loopback import loopback_candidates
from voice_server.bench.relay_server import fast_audio_level_dbov
from voice_server.bench.tone import (
    SAMPLES_PER_FRAME,
    ToneTrack,
)


def test_loopback_patch_offers_only_127_0_0_1_and_is_undone() -> None:
    original = aioice.ice.get_host_addresses
    with loopback_candidates():
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, True) == []
    assert aioice.ice.get_host_addresses is original


async def test_tone_track_waits_for_its_gate_then_paces_20ms_frames() -> None:
    gate = asyncio.Event()
    track = ToneTrack(gate)
    first = asyncio.create_task(track.recv())
    await asyncio.sleep(0.05)
    assert not first.done()
    gate.set()
    frame0 = await first
    start = time.monotonic()
    frames = [await track.recv() for _ in range(5)]
    elapsed = time.monotonic() - start
    assert frame0.samples == SAMPLES_PER_FRAME
    assert frame0.sample_rate == 48_000
    assert [f.pts for f in frames] == [SAMPLES_PER_FRAME * i for i in range(1, 6)]
    assert 0.08 <= elapsed < 0.3
    track.stop()


async def test_fast_audio_level_agrees_with_aiortc_on_mono_frames() -> None:
    gate = asyncio.Event()
    gate.set()
    track = ToneTrack(gate, amplitude=0.3)
    frame = await track.recv()
    track.stop()
    assert fast_audio_level_dbov(frame) == rtp.compute_audio_level_dbov(frame)
    quiet = ToneTrack(gate, amplitude=0.0)
    assert fast_audio_level_dbov(await quiet.recv()) == -127
    quiet.stop()
