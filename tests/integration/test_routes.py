"""Routes with real aiortc peers (`voice-client` processes): a server-side source heard in the
channels it talks into, and a channel added to a live call by renegotiation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.audio import goertzel_power, read_mono, write_tone
from tests.servers import ServerProcess, free_port, running_server
from tests.voiceclients import start_client
from voice_server.app import create_app
from voice_server.config import Config
from voice_server.media.route import Route
from voice_server.sim.audio import opus_frames

pytestmark = pytest.mark.integration

BLOCK = 960  # 20 ms at 48 kHz


def loud_blocks(samples: list[int], threshold: int = 1000) -> list[bool]:
    return [
        max(abs(x) for x in samples[i : i + BLOCK]) > threshold
        for i in range(0, len(samples) - BLOCK, BLOCK)
    ]


def longest_quiet_run(loud: list[bool], start: int, end: int) -> int:
    run = best = 0
    for flag in loud[start:end]:
        run = 0 if flag else run + 1
        best = max(best, run)
    return best


def power(samples: list[int], rate: int, freq: float, t0: float, t1: float) -> float:
    part = samples[int(t0 * rate) : int(t1 * rate)]
    return goertzel_power(part, rate, freq) / max(1, len(part))


def test_a_route_naming_a_channel_the_user_may_not_hear_is_refused_and_nothing_changes(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("ops", "hq")) as server:
        # start_client's token covers its own channel only
        listener = start_client(server, tmp_path, "sup", duration=4, extra_args=["--monitor", "hq"])
        assert listener.wait() == 0, listener.stderr
    assert "route_forbidden" in listener.stderr
    assert listener.of("routed") == [] and listener.of("renegotiated") == []


def _monitor_client(
    server: ServerProcess,
    tmp_path: Path,
    name: str,
    extra: tuple[str, ...] | list[str] = (),
    **kw: Any,
) -> Any:
    """A voice-client whose token covers ops and hq, hearing both (route asked once media is
    up)."""
    token = server.token(name, "ops", "hq")
    return start_client(
        server, tmp_path, name, extra_args=["--monitor", "hq", "--token", token, *extra], **kw
    )


def test_renegotiation_adds_slot_m_lines_to_a_live_aiortc_peer(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv", channels=("ops", "hq")) as server:
        ops_tone = write_tone(tmp_path / "ops.wav", 440, 2.0)
        hq_tone = write_tone(tmp_path / "hq.wav", 660, 2.0)
        ops = start_client(server, tmp_path, "ann", play=ops_tone, loop=True, duration=18,
                           extra_args=["--mode", "open"])  # fmt: skip
        ops.wait_event("media", state="connected")
        # the route is asked 1.5 s after media is up: ops is heard before the renegotiation
        listener = _monitor_client(
            server, tmp_path, "sup", duration=15, extra=["--monitor-delay", "1.5"]
        )
        renegotiated = listener.wait_event("renegotiated", timeout=30)
        # hq starts talking after: its talk events reach the monitor too, naming the channel
        hq = start_client(server, tmp_path, "bea", channel="hq", play=hq_tone, loop=True,
                          duration=9)  # fmt: skip
        hq_started = listener.wait_event("talk_started", timeout=30, channel="hq")
        assert listener.wait() == 0, listener.stderr
        for c in (ops, hq):
            assert c.wait() == 0, c.stderr
    assert listener.of("routed")[0]["hears"] == ["ops", "hq"]
    assert renegotiated["mids"] == 7  # the microphone, three ops slots, three hq slots
    assert hq_started["speaker"]["sub"] == "bea"
    samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
    at = renegotiated["t"]
    loud = loud_blocks(samples)
    first = loud.index(True)
    assert first * BLOCK / rate < at  # ops was heard before the renegotiation ...
    end = int((at + 3.0) * rate / BLOCK)
    assert longest_quiet_run(loud, first, end) <= 2  # ... and went on through it (<= 40 ms)
    t_hq = hq_started["t"]
    before = power(samples, rate, 660, first * BLOCK / rate, t_hq)
    after = power(samples, rate, 660, t_hq + 0.5, t_hq + 3.0)
    assert after > 20 * max(before, 1.0)  # hq is heard on the new m-lines
    assert power(samples, rate, 440, t_hq + 0.5, t_hq + 3.0) > 0.1 * after  # with ops


@contextlib.contextmanager
def inprocess_server(data_dir: Path, channels: tuple[str, ...]) -> Iterator[tuple[Any, Any]]:
    """The server in this process (a thread runs uvicorn): the test reaches its media plane."""
    data_dir.mkdir(parents=True, exist_ok=True)
    srv = ServerProcess(data_dir, free_port(), free_port(socket.SOCK_DGRAM))
    for c in channels:
        srv.cli("channels", "add", c)
    app = create_app(Config(data_dir=data_dir, port=srv.port, media_port=srv.media_port))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=srv.port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.ready():
        assert time.monotonic() < deadline, "in-process server not ready"
        time.sleep(0.05)
    try:
        yield srv, app
    finally:
        server.should_exit = True
        thread.join(15)


async def _announce(state: Any, seconds: float) -> None:
    media = state.media
    state.hub.sources["announce"] = "Announcement"
    source = media.attach_source("announce", Route(("ops", "hq"), ()))
    frames = opus_frames(seconds=1.0)
    t = time.perf_counter()
    for k in range(int(seconds * 50)):
        source.send(frames[k % len(frames)], level=20)
        t += 0.02
        await asyncio.sleep(max(0.0, t - time.perf_counter()))
    for _ in range(50):  # silence: the burst ends by the talk detector's hangover
        source.send(frames[0], level=127)
        t += 0.02
        await asyncio.sleep(max(0.0, t - time.perf_counter()))
    media.detach_source("announce")


def test_a_server_side_source_is_heard_in_its_two_channels_and_not_a_third(
    tmp_path: Path,
) -> None:
    with inprocess_server(tmp_path / "srv", ("ops", "hq", "yard")) as (srv, app):
        clients = {
            ch: start_client(srv, tmp_path, f"in-{ch}", channel=ch, duration=10)
            for ch in ("ops", "hq", "yard")
        }
        for c in clients.values():
            c.wait_event("media", state="connected")
        state = app.state.voice
        loop = state.media.endpoint._loop
        asyncio.run_coroutine_threadsafe(_announce(state, 3.0), loop).result(20)
        for c in clients.values():
            assert c.wait() == 0, c.stderr
    for ch, c in clients.items():
        samples, _ = read_mono(c.record)  # type: ignore[arg-type]
        heard = sum(loud_blocks(samples, threshold=300)) * 0.02
        starts = [e for e in c.of("talk_started") if e["speaker"]["sub"] == "source:announce"]
        if ch == "yard":
            assert heard == 0.0 and starts == []
        else:
            assert heard >= 2.0, (ch, heard)
            assert starts and starts[0]["speaker"]["name"] == "Announcement"
