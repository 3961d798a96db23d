"""``serve --workers 2``: two media processes, one channel whose members sit on both."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import ServerProcess, running_server
from voice_server.sim.group import SimGroup

pytestmark = pytest.mark.integration


@pytest.fixture
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # round-robin: the members of one channel alternate between the two workers (a server
    # per test: placement starts at worker 0)
    env = {"VOICE_WORKERS_PLACEMENT": "round-robin"}
    with running_server(
        tmp_path_factory.mktemp("workers"), env=env, extra_args=["--workers", "2"]
    ) as srv:
        yield srv


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}\{{{re.escape(want)}\}} (\S+)$" if want else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name}{{{want}}} not in /metrics"
    return float(found.group(1))


async def _metrics(server: ServerProcess) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{server.url}/metrics")).text


async def test_every_listener_hears_every_talker_once_across_two_workers(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    token = server.token("sim", "ops")
    group = SimGroup(server.ws_url, "ops", lambda _i: token, dtx=True)
    try:
        # joined one by one, so round-robin places them: talker a and listener c on worker 0,
        # talker b and listener d on worker 1
        (a,) = await group.add(1)
        (b,) = await group.add(1)
        (c,) = await group.add(1)
        (d,) = await group.add(1)
        ports = [p.offer.port for p in (a, b, c, d)]  # type: ignore[union-attr]
        assert ports[0] == ports[2] == server.media_port
        assert ports[1] == ports[3] == server.media_port + 1
        # both workers know the other has listeners of "ops" once every answer is in
        a.talking = b.talking = True
        await asyncio.sleep(2.0)
        a.talking = b.talking = False
        sent = {"a": a.sent, "b": b.sent}
        await asyncio.sleep(0.5)  # packets in flight arrive
        # the workers report their relay counters every second
        await asyncio.sleep(1.2)
        text = await _metrics(server)
    finally:
        await group.close()

    assert min(sent.values()) >= 50
    for listener in (c, d):
        # one stream per talker (two slots), each packet once: no duplicate, (almost) no gap
        assert len(listener.streams) == 2, listener.streams
        assert listener.received >= 0.95 * (sent["a"] + sent["b"])
        for stream in listener.streams.values():
            assert stream.duplicates == 0
            assert stream.lost <= 0.05 * max(sent.values())
        assert listener.srtp_errors == 0
        # talk events come from each talker's own worker only: one talk_started per talker
        assert listener.messages["talk_started"] == 2
    # each talker hears the other once, across the relay for one of them
    assert len(a.streams) == 1 and len(b.streams) == 1
    assert a.received >= 0.95 * sent["b"] and b.received >= 0.95 * sent["a"]
    # one datagram per relayed packet (one other worker with listeners), not one per listener
    for worker in ("0", "1"):
        packets = _metric(text, "voice_relay_packets_total", worker=worker)
        assert packets >= 0.95 * min(sent.values())
        assert _metric(text, "voice_relay_datagrams_sent_total", worker=worker) == packets
        assert _metric(text, "voice_media_worker_up", worker=worker) == 1
        assert _metric(text, "voice_relay_drops_total", worker=worker, reason="bad_auth") == 0


def _worker_pid(server: ServerProcess, index: int) -> int:
    pids = re.findall(rf"media worker started pid=(\d+) worker={index}\b", server.log())
    assert pids, server.log()
    return int(pids[-1])


async def test_a_worker_killed_mid_talk_is_replaced_and_its_listener_hears_again(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    token = server.token("sim", "ops")
    group = SimGroup(server.ws_url, "ops", lambda _i: token, dtx=True)
    try:
        (talker,) = await group.add(1)  # worker 0
        (moved,) = await group.add(1)  # worker 1: killed below
        (survivor,) = await group.add(1)  # worker 0
        assert moved.offer.port == server.media_port + 1  # type: ignore[union-attr]
        talker.talking = True
        for _ in range(100):
            if moved.received >= 50 and survivor.received >= 50:
                break
            await asyncio.sleep(0.05)
        assert moved.received >= 50 and survivor.received >= 50
        os.kill(_worker_pid(server, 1), signal.SIGKILL)
        before = moved.received
        # its client gets a new offer on a live worker and hears the talker again in seconds
        for _ in range(100):
            if moved.reoffers and moved.received >= before + 50:
                break
            await asyncio.sleep(0.1)
        assert moved.reoffers == 1 and moved.received >= before + 50
        talker.talking = False
        await asyncio.sleep(0.5)
        sent = talker.sent
        for _ in range(100):  # the parent restarts the dead worker
            text = await _metrics(server)
            if _metric(text, "voice_media_worker_up", worker="1") == 1:
                break
            await asyncio.sleep(0.1)
    finally:
        await group.close()
    # the listener on the worker that lived never stopped: (almost) every packet, once
    (stream,) = survivor.streams.values()
    assert survivor.received >= 0.95 * sent and stream.duplicates == 0
    assert _metric(text, "voice_media_worker_restarts_total", worker="1") == 1
    assert _metric(text, "voice_media_worker_up", worker="1") == 1
