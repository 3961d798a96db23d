"""Channels across nodes (README "Channels across nodes"): three real `serve` nodes on one real
Redis and PostgreSQL, one channel whose members sit on all three, the channel's owner the one
arbiter; simulated WebRTC participants (real DTLS-SRTP, ICE-lite) on each node. Short timings
(heartbeat 0.2 s, a node dead after 1.5 s); every wait is on a condition."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis

from tests.cluster_nodes import metric, running_nodes
from tests.servers import ServerProcess
from voice_server.bench.redisserver import RedisServer
from voice_server.cluster.relay_sync import parse_relay
from voice_server.cluster_node import RELAY_PURPOSE, SEAL_PURPOSE
from voice_server.identity.derived import derive_key
from voice_server.identity.keys import load_or_create_key
from voice_server.media.relay_packet import RelayPacket, Sealer, pack
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

pytestmark = pytest.mark.integration
WITHIN = 60.0


async def _until(condition: Callable[[], bool], what: str, within: float = WITHIN) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"not in time: {what}"
        await asyncio.sleep(0.05)


async def _metric_at_least(node: ServerProcess, name: str, want: float) -> float:
    deadline = time.monotonic() + WITHIN
    while True:
        got = await asyncio.to_thread(metric, node, name)
        if got >= want:
            return got
        assert time.monotonic() < deadline, f"{name} stays at {got} < {want}"
        await asyncio.sleep(0.2)


async def _one(group: SimGroup) -> SimParticipant:
    return (await group.add(1))[0]


def _groups(nodes: list[ServerProcess], sub: str, role: str = "staff") -> list[SimGroup]:
    out = []
    for node in nodes:
        token = node.token(sub, "ops", role=role)
        out.append(SimGroup(node.ws_url, "ops", lambda _i, t=token: t, dtx=True))  # type: ignore[misc]
    return out


async def _close(groups: list[SimGroup]) -> None:
    for group in groups:
        await group.close()


def _clean(listener: SimParticipant, talkers: int) -> None:
    assert len(listener.streams) == talkers, listener.streams
    for stream in listener.streams.values():
        assert stream.duplicates == 0
    assert listener.srtp_errors == 0


@pytest.mark.parametrize("encrypt", [False, True], ids=["authenticated", "encrypted"])
def test_every_listener_on_three_nodes_hears_every_talker_once(
    redis_server: RedisServer, pg_url: str, tmp_path: Path, encrypt: bool
) -> None:
    env = {"VOICE_CLUSTER_RELAY_ENCRYPT": "true"} if encrypt else None
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c", env=env) as nodes:
        asyncio.run(_spanning(nodes))
        # then, during a call: datagrams of an intruder are refused and counted, audio goes on
        key = load_or_create_key(tmp_path)  # the deployment key every node copied
        asyncio.run(_intruder(nodes, redis_server.url, key, encrypt))


async def _spanning(nodes: list[ServerProcess]) -> None:
    a, b, c = nodes
    groups = _groups(nodes, "staff")
    try:
        ta = await _one(groups[0])  # the channel's first member: node a owns "ops"
        tb = await _one(groups[1])
        listeners = [await _one(g) for g in groups]  # one listener on each node
        await _metric_at_least(a, "voice_cluster_owned_channels", 1)
        ta.talking = tb.talking = True
        await _until(lambda: min(ta.sent, tb.sent) >= 150, "both talkers sent")
        ta.talking = tb.talking = False
        total = ta.sent + tb.sent
        await _until(
            lambda: min(x.received for x in listeners) >= 0.95 * total, "every listener heard"
        )
        for listener in listeners:
            _clean(listener, 2)  # one slot stream per talker, each packet once
            # talk events from the one arbiter (node a's router), wherever the listener is
            await _until(lambda x=listener: x.messages["talk_started"] >= 2, "talk_started")  # type: ignore[misc]
            subs = {e["speaker"]["id"] for e in x_events(listener, "talk_started")}
            assert subs == {ta.session_id, tb.session_id}, subs
        assert ta.received >= 0.95 * tb.sent and tb.received >= 0.95 * ta.sent
        assert len(ta.streams) == 1 and len(tb.streams) == 1
        # node a mirrors what it forwards once to each other node with members (b and c), never
        # once per listener; node b sends its talker's packets to the owner once each
        mirrored = await _metric_at_least(a, "voice_cluster_relay_sent_total", 0.95 * 2 * total)
        media_b = await asyncio.to_thread(metric, b, "voice_cluster_relay_sent_total")
        assert mirrored <= 2 * (total + 200)  # (listeners' DTX frames are forwarded too)
        assert tb.sent <= media_b <= tb.sent + listeners[1].sent + 50
        assert await asyncio.to_thread(metric, c, "voice_cluster_relay_sent_total") <= (
            listeners[2].sent
        )
        for node in nodes:
            assert await asyncio.to_thread(metric, node, "voice_cluster_relay_refused_total") == 0
    finally:
        await _close(groups)


def _refused(node: ServerProcess, reason: str) -> float:
    want = f'voice_cluster_relay_refused_total{{reason="{reason}"}} '
    for line in httpx.get(f"{node.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(want):
            return float(line[len(want) :])
    return 0.0


async def _intruder(nodes: list[ServerProcess], redis_url: str, key: bytes, encrypt: bool) -> None:
    """A datagram with a wrong key, and one of the other format with the right key, sent to
    node b's relay port (from Redis) while a's talker is heard on b: each refused by reason."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        relays = {n: parse_relay(client.hget(f"{{voice}}:node:{n}", "relay") or "") for n in "ab"}
    finally:
        client.close()
    a, b = relays["a"], relays["b"]
    assert a is not None and b is not None
    groups = _groups(nodes[:2], "staff")
    try:
        talker, listener = await _one(groups[0]), await _one(groups[1])
        talker.talking = True
        await _until(lambda: listener.received >= 25, "heard across nodes")
        # forged as node a's (a live peer), so the sealed gate gets as far as its cryptography
        forged = RelayPacket(a.index, a.incarnation, 0, "ops", "intruder", b"\x90" * 40)
        relay_key, seal = derive_key(key, RELAY_PURPOSE), derive_key(key, SEAL_PURPOSE)
        if encrypt:
            wrong_key = Sealer(bytes(32), a.index, a.incarnation).seal(forged)
            other_format = pack(forged, relay_key)
        else:
            wrong_key = pack(forged, bytes(32))
            other_format = Sealer(seal, a.index, a.incarnation).seal(forged)
        heard = listener.received
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(wrong_key, (b.host, b.port))
            sock.sendto(other_format, (b.host, b.port))
        await _until(lambda: listener.received >= heard + 50, "the call goes on")
        node_b = nodes[1]
        for reason in ("bad_auth", "wrong_format"):
            deadline = time.monotonic() + WITHIN
            while await asyncio.to_thread(_refused, node_b, reason) < 1:
                assert time.monotonic() < deadline, f"no {reason} refusal counted"
                await asyncio.sleep(0.2)
            assert await asyncio.to_thread(_refused, node_b, reason) == 1
        assert await asyncio.to_thread(metric, node_b, "voice_cluster_relay_refused_total") == 2
        assert all(s.duplicates == 0 for s in listener.streams.values())
        talker.talking = False
    finally:
        await _close(groups)


def x_events(p: SimParticipant, kind: str) -> list[dict[str, object]]:
    return [e for e in p.talk_events if e["type"] == kind]


def test_a_supervisor_on_another_node_cuts_in_over_three_talkers(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as nodes:
        asyncio.run(_cut_in(nodes))


async def _cut_in(nodes: list[ServerProcess]) -> None:
    staff = _groups(nodes, "staff")
    boss = _groups(nodes[2:], "boss", role="supervisor")
    try:
        talkers = [await _one(staff[0]) for _ in range(3)]  # on node a, the owner
        listener = await _one(staff[1])  # on node b
        sup = await _one(boss[0])  # on node c
        for n, sim in enumerate(talkers, start=1):
            sim.talking = True  # in turn: the third is the most recent holder
            await _until(lambda n=n: listener.messages["talk_started"] >= n, f"talker {n}")  # type: ignore[misc]
        sup.talking = True
        await _until(lambda: talkers[2].messages["preempted"] == 1, "the latest staff preempted")
        await _until(lambda: listener.messages["talk_started"] >= 4, "the supervisor heard")
        started = x_events(listener, "talk_started")[-1]
        assert started["speaker"]["id"] == sup.session_id  # type: ignore[index]
        assert started["priority"] == 2
        # the supervisor's audio reaches node b's listener through node a, once
        before = listener.received
        await _until(lambda: listener.received >= before + 50, "the supervisor's audio")
        assert all(s.duplicates == 0 for s in listener.streams.values())
        assert [s.messages["preempted"] for s in talkers[:2]] == [0, 0]
        for sim in (*talkers, sup):
            sim.talking = False
    finally:
        await _close(staff + boss)


def test_the_owner_killed_mid_talk_hands_its_channel_to_a_live_node(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as nodes:
        asyncio.run(_owner_killed(nodes))


async def _owner_killed(nodes: list[ServerProcess]) -> None:
    a, b, c = nodes
    groups = _groups(nodes, "staff")
    try:
        await _one(groups[0])  # node a owns "ops"
        talker = await _one(groups[1])
        listener = await _one(groups[2])
        talker.talking = True
        await _until(lambda: listener.received >= 50, "heard through the owner")
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        heard = listener.received
        # its lease expires (1.5 s); b or c claims the channel with a new epoch and arbitrates
        await _until(lambda: listener.received >= heard + 100, "heard again after the owner died")
        reowned = sum(
            [
                await asyncio.to_thread(metric, n, "voice_cluster_channels_reowned_total")
                for n in (b, c)
            ]
        )
        assert reowned == 1
        assert all(s.duplicates == 0 for s in listener.streams.values())
        talker.talking = False
    finally:
        await _close(groups)
