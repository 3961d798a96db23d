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

from tests.cluster_nodes import metric, node_process, running_nodes
from tests.servers import ServerProcess
from tests.tcpgate import TcpGate
from voice_server.bench.redisserver import RedisServer
from voice_server.calllog.ogg import read_ogg_opus
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


REFUSED = "voice_cluster_relay_refused_total"


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
        # refusals from here on: a node's first pings can reach a peer that has not yet read
        # the node's relay entry from Redis (a heartbeat behind): refused as unknown_peer and
        # counted, before any call (seen once in a busy CI run)
        refused0 = [await asyncio.to_thread(metric, n, REFUSED) for n in nodes]
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
        refused = [await asyncio.to_thread(metric, n, REFUSED) for n in nodes]
        assert refused == refused0, (refused0, refused)  # nothing of the call refused anywhere
        # the call log: each burst once, on the owner, the talker from node b named by its node
        spools = [n.data_dir / "spool" for n in nodes]
        await _until(lambda: len(list(spools[0].glob("*.ogg"))) == 2, "two bursts on a")
        await _until(lambda: not list(spools[0].glob("*.part")), "the bursts written")
        tags = [read_ogg_opus(f.read_bytes()).tags for f in spools[0].glob("*.ogg")]
        assert sorted(t["VOICE_SPEAKER_NAME"] for t in tags) == ["staff", "staff"], tags
        assert not [f for sp in spools[1:] for f in sp.glob("*.ogg*")]
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
        node_b = nodes[1]
        before = await asyncio.to_thread(metric, node_b, REFUSED)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(wrong_key, (b.host, b.port))
            sock.sendto(other_format, (b.host, b.port))
        await _until(lambda: listener.received >= heard + 50, "the call goes on")
        for reason in ("bad_auth", "wrong_format"):
            deadline = time.monotonic() + WITHIN
            while await asyncio.to_thread(_refused, node_b, reason) < 1:
                assert time.monotonic() < deadline, f"no {reason} refusal counted"
                await asyncio.sleep(0.2)
            assert await asyncio.to_thread(_refused, node_b, reason) == 1
        assert await asyncio.to_thread(metric, node_b, REFUSED) == before + 2
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


def test_a_console_on_another_node_monitors_a_channel_and_talks_into_it(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as nodes:
        nodes[0].cli("channels", "add", "hq")
        asyncio.run(_console(nodes))


async def _console(nodes: list[ServerProcess]) -> None:
    a, b, c = nodes
    tokens = [n.token("staff", "hq") for n in (a, b)]
    staff = [
        SimGroup(n.ws_url, "hq", lambda _i, t=t: t, dtx=True)  # type: ignore[misc]
        for n, t in zip((a, b), tokens, strict=True)
    ]
    boss = c.token("boss", "ops", "hq", role="supervisor")
    desk = SimGroup(c.ws_url, "ops", lambda _i: boss, dtx=True)
    try:
        x = await _one(staff[0])  # node a owns hq
        y = await _one(staff[1])
        con = await _one(desk)  # node c: nobody of hq there
        await con.send_message(type="monitor", channels=["hq"], id="m")
        await _until(lambda: con.messages["monitored"] == 1 and con.renegotiations == 1, "monitor")
        before = con.received
        x.talking = True  # heard on node c only through hq's owner, node a
        await _until(lambda: con.received >= before + 50, "the console hears hq")
        x.talking = False
        await _until(
            lambda: any(e["speaker"]["id"] == x.session_id for e in x_events(con, "talk_stopped")),  # type: ignore[index]
            "the console told hq's talk",
        )
        await con.send_message(type="talk_target", channels=["hq"], id="t")
        await _until(lambda: con.messages["talk_target_set"] == 1, "talk target")
        got = {p: p.received for p in (x, y)}
        con.talking = True  # its packets go to hq's owner, node a, which mirrors them to b
        await _until(lambda: all(p.received >= got[p] + 50 for p in (x, y)), "hq hears the console")
        con.talking = False
        for p in (x, y):
            assert all(s.duplicates == 0 for s in p.streams.values())
            await _until(
                lambda p=p: any(  # type: ignore[misc]
                    e["speaker"]["id"] == con.session_id for e in x_events(p, "talk_started")
                ),
                "hq told of the console's talk",
            )
    finally:
        await _close([*staff, desk])


def test_a_node_cut_off_from_redis_tells_spanning_channels_degraded_and_keeps_local_ones(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    """Node a reaches Redis through a gate the test cuts (a partition): after an owner lease,
    node b (which reaches Redis) re-owns the channel that spans both; a's member of it is told
    ``degraded``; a channel whose members are all on a goes on there."""
    gate = TcpGate("127.0.0.1", redis_server.port)
    with gate.running():
        a = node_process(tmp_path, "a", pg_url, f"redis://127.0.0.1:{gate.port}/0")
        b = node_process(tmp_path, "b", pg_url, redis_server.url)
        try:
            a.start()
            b.start()
            a.cli("channels", "add", "hq")
            asyncio.run(_partition(a, b, gate))
        finally:
            gate.heal()
            a.stop()
            b.stop()


async def _partition(a: ServerProcess, b: ServerProcess, gate: TcpGate) -> None:
    ops_a, ops_b = _groups([a, b], "staff")
    token = a.token("hq-staff", "hq")
    hq = SimGroup(a.ws_url, "hq", lambda _i: token, dtx=True)
    try:
        la = await _one(ops_a)  # node a owns ops
        talker = await _one(ops_b)
        x, y = await _one(hq), await _one(hq)  # hq: only on node a
        talker.talking = True
        await _until(lambda: la.received >= 50, "ops heard across nodes")
        gate.cut()
        await _until(lambda: la.messages["degraded"] == 1, "a's ops member told degraded")
        await _metric_at_least(b, "voice_cluster_channels_reowned_total", 1)
        lb = await _one(ops_b)  # ops goes on at b, its owner now
        await _until(lambda: lb.received >= 50, "ops heard on b after the re-owning")
        before = y.received
        x.talking = True  # hq, local to a, goes on there
        await _until(lambda: y.received >= before + 50, "hq goes on on a")
        x.talking = talker.talking = False
        assert x.messages["degraded"] == y.messages["degraded"] == 0
        assert lb.messages["degraded"] == talker.messages["degraded"] == 0
        assert await asyncio.to_thread(metric, a, "voice_cluster_degraded_sent_total") == 1
        gate.heal()  # a finds b holds ops (its own lease lost) and follows it
        await _metric_at_least(a, "voice_cluster_leases_lost_total", 1)
    finally:
        await _close([ops_a, ops_b, hq])


async def _joins(node: ServerProcess, token: str) -> None:
    group = SimGroup(node.ws_url, "ops", lambda _i: token, dtx=True)
    try:
        assert (await _one(group)).session_id
    finally:
        await group.close()


FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def _skewed(seconds: int) -> dict[str, str]:
    """A node whose wall clock is ``seconds`` off (Debian's libfaketime; its monotonic clock,
    which only measures intervals, stays true)."""
    return {
        "LD_PRELOAD": str(FAKETIME),
        "FAKETIME": f"{seconds:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


@pytest.mark.skipif(not FAKETIME.exists(), reason="Debian's faketime is not installed")
def test_nodes_whose_clocks_are_minutes_apart_keep_one_cluster(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    """Node b's wall clock runs 2 min ahead, c's 2 min behind: leases, reports and presence
    go by Redis's clock, so no node looks dead and no lease flaps; a token minted on b is taken
    on c (4 min apart); the channel spanning them carries every talker once."""
    # the default timings (a node dead after 5 s): a busy machine's stalls never look like
    # deaths, while a skew of 2 min would, were any lease or report read on a node's clock
    timing = {"VOICE_CLUSTER_HEARTBEAT_SECONDS": "1", "VOICE_CLUSTER_NODE_TTL_SECONDS": "5"}
    nodes = [
        node_process(tmp_path, "a", pg_url, redis_server.url, timing),
        node_process(tmp_path, "b", pg_url, redis_server.url, {**timing, **_skewed(120)}),
        node_process(tmp_path, "c", pg_url, redis_server.url, {**timing, **_skewed(-120)}),
    ]
    try:
        for node in nodes:
            node.start()
        asyncio.run(_spanning(nodes))
        ahead = nodes[1].token("early", "ops")  # minted on b's clock
        asyncio.run(_joins(nodes[2], ahead))
        for node in nodes:
            assert metric(node, "voice_cluster_leases_lost_total") == 0
            assert metric(node, "voice_cluster_channels_reowned_total") == 0
    finally:
        for node in nodes:
            node.stop()


def test_the_owner_hung_mid_talk_is_replaced_and_fenced_off_when_it_wakes(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as nodes:
        try:
            asyncio.run(_owner_hung(nodes))
        finally:
            assert nodes[0].proc is not None
            nodes[0].proc.send_signal(signal.SIGCONT)


async def _owner_hung(nodes: list[ServerProcess]) -> None:
    a = nodes[0]
    groups = _groups(nodes, "staff")
    try:
        await _one(groups[0])  # node a owns "ops"
        talker = await _one(groups[1])
        listener = await _one(groups[2])
        talker.talking = True
        await _until(lambda: listener.received >= 50, "heard through the owner")
        assert a.proc is not None
        a.proc.send_signal(signal.SIGSTOP)
        heard = listener.received
        await _until(lambda: listener.received >= heard + 100, "heard again while a hangs")
        a.proc.send_signal(signal.SIGCONT)
        # a wakes believing it owns ops: its renewal is refused (another epoch holds it), it
        # follows the new owner, and nothing it sent meanwhile reaches a listener twice
        await _metric_at_least(a, "voice_cluster_leases_lost_total", 1)
        heard = listener.received
        await _until(lambda: listener.received >= heard + 100, "heard after a woke")
        assert all(s.duplicates == 0 for s in listener.streams.values())
        talker.talking = False
    finally:
        await _close(groups)


def test_a_15_s_redis_outage_moves_no_channel_and_the_spanning_call_goes_on(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    """Redis hangs (SIGSTOP) for 15 s during a call spanning three nodes: voice never waits on
    it, and when it returns (every lease expired meanwhile, by Redis's clock) the owner claims
    its channel again: nobody else takes it, the listeners lose nothing."""
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as nodes:
        try:
            asyncio.run(_redis_outage(nodes, redis_server))
        finally:
            assert redis_server.proc is not None
            redis_server.proc.send_signal(signal.SIGCONT)


async def _redis_outage(nodes: list[ServerProcess], redis_server: RedisServer) -> None:
    a, b, c = nodes
    groups = _groups(nodes, "staff")
    assert redis_server.proc is not None
    try:
        la = await _one(groups[0])  # node a owns "ops"
        talker = await _one(groups[1])
        lc = await _one(groups[2])
        talker.talking = True
        await _until(lambda: min(la.received, lc.received) >= 50, "heard across nodes")
        redis_server.proc.send_signal(signal.SIGSTOP)
        await _metric_at_least(b, "voice_cluster_redis_link_downs_total", 1)
        during = {p: p.received for p in (la, lc)}
        await asyncio.sleep(15)  # the outage itself (not a wait for a condition)
        assert all(p.received >= during[p] + 500 for p in (la, lc))  # 15 s at 50 packets/s
        redis_server.proc.send_signal(signal.SIGCONT)
        await _metric_at_least(a, "voice_cluster_leases_lost_total", 1)  # expired meanwhile
        await _metric_at_least(a, "voice_cluster_owned_channels", 1)  # and claimed again
        after = {p: p.received for p in (la, lc)}
        await _until(lambda: all(p.received >= after[p] + 100 for p in (la, lc)), "heard after")
        talker.talking = False
        for node in (b, c):
            name = "voice_cluster_channels_reowned_total"
            assert await asyncio.to_thread(metric, node, name) == 0
        # every node heard the others say they had lost Redis too (relay pings): an outage,
        # not a partition: nobody was told to go
        for node in (a, b, c):
            name = "voice_cluster_degraded_sent_total"
            assert await asyncio.to_thread(metric, node, name) == 0
        assert la.messages["degraded"] == lc.messages["degraded"] == 0
        for p in (la, lc):
            ((ssrc, stream),) = p.streams.items()  # one slot stream all along
            assert stream.duplicates == 0
            assert stream.lost <= 0.02 * stream.received, (ssrc, stream.lost, stream.received)
    finally:
        await _close(groups)
