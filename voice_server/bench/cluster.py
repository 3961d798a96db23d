"""``voice-server bench cluster``: a channel across nodes, a node's death, a Redis outage.

Real ``serve --node-id … --redis-url … --database-url postgresql://…`` nodes (:mod:`serverproc`,
production timings: heartbeat 1 s, node TTL 5 s) on one Redis and one PostgreSQL (started in a
temporary folder unless URLs are given); simulated WebRTC participants (:mod:`voice_server.sim`,
real DTLS-SRTP, in this process), one talker, listeners silent (no DTX: every packet a listener
gets is the talker's). In order:

1. ``one_node``: the ``members`` × 3 participants on node a alone (channel ``solo``): server CPU
   per copy delivered (node a from ``/proc``), the obvious alternative to spanning nodes; nodes
   b and c, idle meanwhile, give an idle node's CPU;
2. ``span``: ``members`` on each of nodes a, b, c in channel ``ops`` (a owns it: its first
   member; the talker on b): CPU of the three nodes per copy, ``cpu_ratio`` = span ÷ one node
   per copy, ``relay_cpu``: the span's CPU beyond one node's and two idle nodes', per relayed
   datagram (Δ ``voice_cluster_relay_sent_total``), and ``hop.added_ms``: the nodes'
   Δ ``voice_cluster_relay_hop_seconds`` (the sending node's send time to the receiving node's
   receipt; both hops b → a → b/c);
3. ``failover``: a fourth node d starts (the ring a → b → c → d → a), node c (neither owner nor
   talker) is SIGKILLed, later d (now holding c's clients) is SIGSTOPped (then SIGKILLed); each
   of their clients follows :data:`CLIENT_RULE` and ``kill_s`` / ``hang_s`` are the time from
   the signal until 95 % of them hear the talker again on another node (a new session's first
   packet), with the distribution over those clients, when they joined, and the gaps the other
   listeners had meanwhile;
4. ``redis_outage`` (only with a Redis of our own): redis-server SIGSTOPped ``outage`` s while
   the calls go on (listeners on a and b by then): the longest gap between two of the talker's
   packets at any listener (kernel arrival times), per window (before a join tried meanwhile,
   during it, the rest of the outage, ``after`` s once Redis is back: ``max_gap_ms`` is the
   worst, ``max_gap_while_down_ms`` leaves the last out), the channels re-owned meanwhile, and
   ``rejoin_s``: SIGCONT to a join on b accepted again (its ``offer``), tried every 0.1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from voice_server.bench import prom
from voice_server.bench.procstat import CpuMeter
from voice_server.bench.serverproc import ServerChild
from voice_server.histogram import LatencyHistogram
from voice_server.identity.keys import KEY_FILE
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

__all__ = [
    "BACKOFF",
    "CLIENT_RULE",
    "TARGETS",
    "ClientRule",
    "Lost",
    "Silence",
    "distribution",
    "format_summary",
    "run_cluster_bench",
    "time_to_fraction",
]

TARGETS = {
    "hop_p99_ms": 2.0,
    "kill_s": 3.0,
    "hang_s": 6.0,
    "outage_max_gap_ms": 100.0,
    "rejoin_s": 5.0,
}
#: the headset client's reconnect back-off (clients/headset/voice_client/runner.py), ±20 %
BACKOFF = (0.25, 0.5, 1.0, 2.0)
PING_INTERVAL = 2.0  # the apps' ping while joined
SILENCE_LIMIT = 5.0  # no message from the node for this long: it is gone
HEARD = 0.95  # share of a node's clients that must hear audio again
CONNECT_S = 10.0  # one join try (WebSocket, ICE, DTLS)
WAIT_S = 60.0
CLIENT_RULE = (
    "the headset client's (voice_client/nodes.py failover_node, runner.py BACKOFF): a ping every "
    f"{PING_INTERVAL:g} s while joined; {SILENCE_LIMIT:g} s without any message from the node "
    "(a ping unanswered for 3 s) -> the next node; a dropped socket -> first the same node "
    "again (a resume there keeps the session); a try refused, failed or timed out, or a join "
    "refused with cluster_unavailable -> the next node; tries after 0.25, 0.5, 1, 2, 2 ... s "
    "(+-20 %); nodes in the ring a, b, c, d"
)


# ---------------------------------------------------------------------- pure parts
class Lost(Enum):
    """Why a client connects again (the headset client's ``voice_client.nodes.Lost``)."""

    DROPPED = "dropped"
    SILENT = "silent"
    REFUSED = "refused"
    FAILED = "failed"
    UNAVAILABLE = "unavailable"


@dataclass
class ClientRule:
    """Where and when a client's next try goes (pure; ``rand`` for the back-off jitter)."""

    nodes: int
    backoff: tuple[float, ...] = BACKOFF
    rand: Callable[[float, float], float] = random.uniform

    def next_try(self, current: int, why: Lost, attempt: int) -> tuple[int, float]:
        """The node index of try ``attempt`` (0: the first after the loss) and the delay."""
        node = current if why is Lost.DROPPED else (current + 1) % self.nodes
        delay = self.backoff[min(attempt, len(self.backoff) - 1)] * self.rand(0.8, 1.2)
        return node, delay


@dataclass
class Silence:
    """The apps' liveness (voice_client/liveness.py, simplified: the client is never busy):
    a ping every :data:`PING_INTERVAL` s; dead once nothing was heard for :data:`SILENCE_LIMIT`
    s and a ping has gone unanswered for ``SILENCE_LIMIT - PING_INTERVAL`` s."""

    last_heard: float
    next_ping: float
    unanswered: float | None = None

    @classmethod
    def opened(cls, now: float) -> Silence:
        return cls(last_heard=now, next_ping=now + PING_INTERVAL)

    def heard(self, now: float) -> None:
        self.last_heard = now
        self.unanswered = None

    def beat(self, now: float) -> tuple[bool, bool]:
        """(send a ping now, the link is dead)."""
        if (
            self.unanswered is not None
            and now - self.last_heard >= SILENCE_LIMIT
            and now - self.unanswered >= SILENCE_LIMIT - PING_INTERVAL
        ):
            return False, True
        if now >= self.next_ping:
            self.next_ping = now + PING_INTERVAL
            if self.unanswered is None:
                self.unanswered = now
            return True, False
        return False, False


def time_to_fraction(times: list[float | None], fraction: float = HEARD) -> float | None:
    """The time by which ``fraction`` of the clients had heard audio again (nearest rank; a
    None is a client that never did); None when fewer than that ever did, or no clients."""
    if not times:
        return None
    need = max(1, math.ceil(fraction * len(times)))
    done = sorted(t for t in times if t is not None)
    return round(done[need - 1], 3) if len(done) >= need else None


def distribution(values: list[float | None], digits: int = 3) -> dict[str, Any]:
    """count, never (None values), p50, p95, max (nearest rank) of the others."""
    xs = sorted(v for v in values if v is not None)
    out: dict[str, Any] = {"count": len(values), "never": len(values) - len(xs)}
    for p in (50, 95):
        out[f"p{p}"] = round(xs[max(1, math.ceil(p / 100 * len(xs))) - 1], digits) if xs else None
    out["max"] = round(xs[-1], digits) if xs else None
    return out


# ---------------------------------------------------------------------- nodes
@dataclass
class Node:
    name: str
    child: ServerChild
    group: SimGroup | None = None
    state: str = "up"  # up, killed, hung

    @property
    def pid(self) -> int:
        return self.child.pid


class Cluster:
    """Nodes on one Redis and one PostgreSQL, one deployment key, channels in PostgreSQL."""

    def __init__(self, root: Path, redis_url: str, pg_url: str) -> None:
        self.root = root
        self.redis_url = redis_url
        self.pg_url = pg_url
        self.nodes: list[Node] = []

    def env(self, node_id: str) -> dict[str, str]:
        return {
            "VOICE_NODE_ID": node_id,
            "VOICE_REDIS_URL": self.redis_url,
            "VOICE_DATABASE_URL": self.pg_url,
        }

    async def add(self, node_id: str, channels: tuple[str, ...] = ()) -> Node:
        data = self.root / node_id
        data.mkdir(parents=True)
        shared = self.root / KEY_FILE
        if shared.exists():
            shutil.copy(shared, data / KEY_FILE)
        child = ServerChild(data, "ops", env=self.env(node_id))  # writes the key if new
        if not shared.exists():
            shutil.copy(data / KEY_FILE, shared)
        for name in channels:  # into the one PostgreSQL database
            await asyncio.to_thread(self._cli, data, node_id, "channels", "add", name)
        await child.start(within=60.0)
        node = Node(node_id, child)
        self.nodes.append(node)
        return node

    def _cli(self, data: Path, node_id: str, *args: str) -> None:
        env = {**os.environ, **self.env(node_id)}
        subprocess.run(
            [sys.executable, "-m", "voice_server.cli", *args, "--data-dir", str(data)],
            env=env, capture_output=True, check=True, timeout=60,
        )  # fmt: skip

    def token(self, sub: str, channel: str) -> str:
        return self.nodes[0].child.token(sub, channel=channel)

    async def close(self) -> None:
        for node in self.nodes:
            if node.group is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(node.group.close(), 20)
        for node in self.nodes:
            if node.state == "hung":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGCONT)
            with contextlib.suppress(Exception):
                await node.child.stop(within=10.0)


def _group(cluster: Cluster, node: Node, channel: str) -> SimGroup:
    token = cluster.token(f"{channel}-{node.name}", channel)
    return SimGroup(node.child.ws_url, channel, lambda _i: token, dtx=False)


async def _scrape(nodes: list[Node]) -> list[prom.Samples]:
    return [prom.parse(await n.child.metrics()) for n in nodes]


def _delta(m0: list[prom.Samples], m1: list[prom.Samples], name: str) -> float:
    return sum(prom.value(b, name) - prom.value(a, name) for a, b in zip(m0, m1, strict=True))


def _total(samples: prom.Samples, name: str) -> float:
    """``name`` summed over its labels."""
    return sum(v for (n, _labels), v in samples.items() if n == name)


def _relayed(samples: prom.Samples) -> float:
    return sum(
        prom.value(samples, "voice_cluster_relay_sent_total", kind=k) for k in ("media", "mirror")
    )


async def _until(check: Callable[[], bool], what: str, within: float = WAIT_S) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not in {within:g} s: {what}")
        await asyncio.sleep(0.05)


async def _window(
    nodes: list[Node], seconds: float, listeners: list[SimParticipant], latency: LatencyHistogram
) -> dict[str, Any]:
    """CPU of ``nodes`` and what they forwarded and relayed over ``seconds``."""
    m0 = await _scrape(nodes)
    meters = [CpuMeter(n.pid) for n in nodes]
    rx0 = sum(p.received for p in listeners)
    latency.reset()
    for m in meters:
        m.start()
    await asyncio.sleep(seconds)
    readings = [m.stop() for m in meters]
    m1 = await _scrape(nodes)
    copies = _delta(m0, m1, "voice_media_packets_out_total")
    relayed = sum(_relayed(b) - _relayed(a) for a, b in zip(m0, m1, strict=True))
    cpu = sum(r.cpu_seconds for r in readings)
    wall = readings[0].wall_seconds
    if copies <= 0:
        raise RuntimeError("the nodes forwarded nothing in the measurement window")
    hop = _merged_delta(m0, m1, "voice_cluster_relay_hop_seconds")
    return {
        "window_seconds": round(wall, 3),
        "copies": round(copies),
        "copies_per_second": round(copies / wall, 1),
        "received_by_listeners": sum(p.received for p in listeners) - rx0,
        "relayed": round(relayed),
        "cpu_seconds": round(cpu, 3),
        "cpu_cores": {n.name: round(r.cores, 4) for n, r in zip(nodes, readings, strict=True)},
        "cpu_us_per_copy": round(cpu * 1e6 / copies, 3),
        "cpu_us_per_relayed": round(cpu * 1e6 / relayed, 3) if relayed else None,
        "hop_ms": _ms(hop) if hop is not None and hop.count else None,
        "end_to_end_ms": _ms(latency) if latency.count else None,
    }


def _merged_delta(
    m0: list[prom.Samples], m1: list[prom.Samples], name: str
) -> LatencyHistogram | None:
    """The nodes' histograms ``name`` between two scrapes, added up (None: no node has it)."""
    out: LatencyHistogram | None = None
    for a, b in zip(m0, m1, strict=True):
        try:
            h = prom.histogram_delta(a, b, name)
        except ValueError:  # a node without it
            continue
        if out is None:
            out = h
        else:
            out.merge(h)
    return out


def _ms(h: LatencyHistogram) -> dict[str, Any]:
    return {
        k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.summary_ms((50, 99)).items()
    }


# ---------------------------------------------------------------------- clients
@dataclass
class Client:
    """A listener that follows :data:`CLIENT_RULE` over the cluster's nodes."""

    index: int
    node: int
    p: SimParticipant
    lost: list[tuple[float, Lost]] = field(default_factory=list)
    #: (perf_counter_ns when it lost its node, the new participant) per failover
    moves: list[tuple[int, SimParticipant]] = field(default_factory=list)
    tries: int = 0
    #: (perf_counter_ns, "node: reason") of each try that failed
    failures: list[tuple[int, str]] = field(default_factory=list)


class Fleet:
    """The bench's clients: each watched by one task that pings, notices silence and a dropped
    socket, and rejoins by :class:`ClientRule`."""

    def __init__(self, cluster: Cluster, channel: str) -> None:
        self.cluster = cluster
        self.channel = channel
        self.rule = ClientRule(nodes=4)
        self.clients: list[Client] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()

    def _node(self, i: int) -> Node | None:
        nodes = self.cluster.nodes
        return nodes[i] if i < len(nodes) else None

    def watch(self, node: int, p: SimParticipant) -> Client:
        c = Client(len(self.clients), node, p)
        self.clients.append(c)
        self.tasks.append(asyncio.create_task(self._run(c), name=f"bench-client-{c.index}"))
        return c

    async def _run(self, c: Client) -> None:
        while not self._stop.is_set():
            why = await self._watch(c)
            if why is None:
                return
            await self._rejoin(c, why)

    async def _watch(self, c: Client) -> Lost | None:
        live = Silence.opened(time.monotonic())
        seen = sum(c.p.messages.values())
        while not self._stop.is_set():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            heard = sum(c.p.messages.values())
            if heard != seen:
                seen = heard
                live.heard(now)
            if c.p.signaling_closed is not None:
                return Lost.DROPPED
            ping, dead = live.beat(now)
            if dead:
                return Lost.SILENT
            if ping:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(c.p.send_message(type="ping"), 1.0)
        return None

    async def _rejoin(self, c: Client, why: Lost) -> None:
        lost_ns = time.perf_counter_ns()
        c.lost.append((time.monotonic(), why))
        old_group = self._group(c.node)
        if old_group is not None:
            old_group.pacer.remove(c.p)
        closing = asyncio.create_task(c.p.close(leave=False))  # a hung node: up to 5 s
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        attempt = 0
        node = c.node
        while not self._stop.is_set():
            node, delay = self.rule.next_try(node, why, attempt)
            attempt += 1
            await asyncio.sleep(delay)
            group = self._group(node)
            if group is None:  # not started: as refused
                why = Lost.REFUSED
                continue
            c.tries += 1
            token = self.cluster.token(f"m{c.index}", self.channel)
            p = group.participant(token, self.channel, f"c{c.index}-{c.tries}")
            try:
                await group.connect(p, within=CONNECT_S)
            except (ConnectionRefusedError, OSError) as exc:
                why = Lost.REFUSED if isinstance(exc, ConnectionRefusedError) else Lost.FAILED
            except TimeoutError:
                why = Lost.FAILED
            except Exception as exc:  # join refused, DTLS failed, handshake
                why = Lost.UNAVAILABLE if "cluster_unavailable" in str(exc) else Lost.FAILED
            else:
                c.p, c.node = p, node
                c.moves.append((lost_ns, p))
                return
            name = self.cluster.nodes[node].name
            c.failures.append((time.perf_counter_ns(), f"{name}: {why.value}"))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.close(leave=False), 5)

    def _group(self, i: int) -> SimGroup | None:
        node = self._node(i)
        return None if node is None else node.group

    async def stop(self) -> None:
        self._stop.set()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _joined_after(client: Client, since_ns: int) -> float | None:
    """Seconds from ``since_ns`` to the join accepted (its offer) on the node it moved to."""
    for lost_ns, p in client.moves:
        if lost_ns >= since_ns and p.offer_ns >= 0:
            return (p.offer_ns - since_ns) / 1e9
    return None


def _heard_after(client: Client, since_ns: int) -> float | None:
    """Seconds from ``since_ns`` to the first packet on the session it moved to after then."""
    for lost_ns, p in client.moves:
        if lost_ns >= since_ns and p.first_audio_ns >= 0:
            return (p.first_audio_ns - since_ns) / 1e9
    return None


# ---------------------------------------------------------------------- phases
async def _one_node(cluster: Cluster, members: int, seconds: float, warmup: float) -> Any:
    a = cluster.nodes[0]
    group = _group(cluster, a, "solo")
    try:
        ps = await group.add(members * 3, within=CONNECT_S * 6)
        ps[0].talking = True
        await _until(lambda: min(p.received for p in ps[1:]) > 0, "one node: every listener heard")
        await asyncio.sleep(warmup)
        idle = [CpuMeter(n.pid) for n in cluster.nodes[1:]]  # b and c, no members: baseline
        for m in idle:
            m.start()
        out = await _window([a], seconds, ps[1:], group.latency)
        out["idle_node_cores"] = round(sum(m.stop().cores for m in idle) / len(idle), 4)
        ps[0].talking = False
        out["talker_sent"] = ps[0].sent
        return out
    finally:
        await group.close()


async def _span(
    cluster: Cluster, fleet: Fleet, members: int, seconds: float, warmup: float
) -> tuple[dict[str, Any], SimParticipant, list[Client]]:
    nodes = cluster.nodes[:3]
    for node in nodes:
        node.group = _group(cluster, node, "ops")
    a, b, _c = nodes
    assert a.group is not None and b.group is not None
    first = (await a.group.add(1))[0]  # the channel's first member: node a owns "ops"
    talker = (await b.group.add(1))[0]
    listeners = [fleet.watch(0, first)]
    for i, node in enumerate(nodes):
        assert node.group is not None
        need = members - (1 if node in (a, b) else 0)
        for p in await node.group.add(need, within=CONNECT_S * 6):
            listeners.append(fleet.watch(i, p))
    talker.talking = True
    ears = [c.p for c in listeners]
    await _until(lambda: min(p.received for p in ears) > 0, "span: every listener heard")
    await asyncio.sleep(warmup)
    latency = LatencyHistogram()
    for node in nodes:
        assert node.group is not None
        node.group.latency.reset()
    out = await _window(nodes, seconds, ears, latency)
    for node in nodes:  # the listeners' end-to-end latency, all three nodes
        assert node.group is not None
        latency.merge(node.group.latency)
    out["end_to_end_ms"] = _ms(latency) if latency.count else None
    out["owner"] = "a"
    out["talker_on"] = "b"
    return out, talker, listeners


def _gaps(listeners: list[Client], names: list[str]) -> dict[str, Any]:
    """The longest gap (ms) per listener since the last reset, by listener node, then reset."""
    by_node: dict[str, list[float | None]] = {}
    for cl in listeners:
        gap = max((s.max_gap_ns for s in cl.p.streams.values() if s.received), default=0)
        by_node.setdefault(names[cl.node], []).append(gap / 1e6)
        for s in cl.p.streams.values():
            s.max_gap_ns = 0
    every = [g for gaps in by_node.values() for g in gaps if g is not None]
    return {
        "max_ms": round(max(every), 1) if every else None,
        "by_node": {n: distribution(g, 1) for n, g in sorted(by_node.items())},
    }


async def _redis_outage(
    cluster: Cluster, redis_pid: int, listeners: list[Client], outage: float, after: float
) -> dict[str, Any]:
    """Redis SIGSTOPped ``outage`` s; the listeners' gaps in three windows (before the join
    tried meanwhile, during it, the rest of the outage, then ``after`` s once Redis is back), by
    listener node, the bench's own pacer lateness (a stall here would be a gap at every
    listener), and the channels re-owned meanwhile (leases lapse while Redis is away)."""
    c = cluster.nodes[1]  # b: a live node that does not own the channel
    assert c.group is not None
    up = [n for n in cluster.nodes if n.state == "up"]
    m0 = await _scrape(up)
    names = [n.name for n in cluster.nodes]
    pacers = [n.group.pacer for n in cluster.nodes if n.group is not None]
    rx0 = sum(cl.p.received for cl in listeners)
    _gaps(listeners, names)
    for pacer in pacers:
        pacer.lateness.reset()
    windows: dict[str, Any] = {}
    os.kill(redis_pid, signal.SIGSTOP)
    stopped = time.monotonic()
    refused_in: float | None = None
    probe_error = ""
    try:
        await asyncio.sleep(min(2.0, outage / 2))  # the nodes notice at their next call
        windows["before_join"] = _gaps(listeners, names)
        p = c.group.participant(cluster.token("probe", "ops"), "ops", "probe-outage")
        t = time.monotonic()
        try:
            await c.group.connect(p, within=CONNECT_S)
            probe_error = "accepted"
        except Exception as exc:
            refused_in = round(time.monotonic() - t, 3)
            probe_error = str(exc)[:120]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(p.close(leave=False), 5)
        await asyncio.sleep(0.3)
        windows["join_tried"] = _gaps(listeners, names)
        await asyncio.sleep(max(0.0, stopped + outage - time.monotonic()))
        windows["rest_of_outage"] = _gaps(listeners, names)
    finally:
        os.kill(redis_pid, signal.SIGCONT)
    resumed = time.monotonic()
    resumed_ns = time.perf_counter_ns()
    rejoin_s: float | None = None
    tries = 0
    while time.monotonic() - resumed < WAIT_S:
        tries += 1
        p = c.group.participant(cluster.token("probe", "ops"), "ops", f"probe-{tries}")
        try:
            await c.group.connect(p, within=CONNECT_S)
        except Exception:
            await asyncio.sleep(0.1)
            continue
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(p.close(), 5)
        rejoin_s = round((p.offer_ns - resumed_ns) / 1e9, 3)
        break
    await asyncio.sleep(max(0.0, resumed + after - time.monotonic()))  # the aftermath counts
    windows["after_return"] = _gaps(listeners, names)
    m1 = await _scrape(up)
    reowned = {
        n.name: round(
            _total(b, "voice_cluster_channels_reowned_total")
            - _total(a, "voice_cluster_channels_reowned_total")
        )
        for n, a, b in zip(up, m0, m1, strict=True)
    }
    owned = {
        n.name: round(_total(b, "voice_cluster_owned_channels"))
        for n, b in zip(up, m1, strict=True)
    }
    late = max(pacer.lateness.max_us for pacer in pacers) / 1e3 if pacers else None
    worst = [w["max_ms"] for w in windows.values() if w["max_ms"] is not None]
    during = [
        w["max_ms"] for k, w in windows.items() if k != "after_return" and w["max_ms"] is not None
    ]
    return {
        "outage_seconds": round(resumed - stopped, 3),
        "how": "redis-server SIGSTOP, then SIGCONT",
        "listeners": len(listeners),
        "received_during": sum(cl.p.received for cl in listeners) - rx0,
        "max_gap_ms": max(worst) if worst else None,
        "max_gap_while_down_ms": max(during) if during else None,
        "gaps": windows,
        "bench_pacer_late_max_ms": late,
        "join_during": {"on": c.name, "refused_in_s": refused_in, "answer": probe_error},
        "watched_after_return_s": after,
        "reowned": reowned,
        "owned_after": owned,
        "rejoin_s": rejoin_s,
        "rejoin_tries": tries,
    }


async def _failover(
    cluster: Cluster, fleet: Fleet, victim: int, how: signal.Signals, within: float
) -> dict[str, Any]:
    node = cluster.nodes[victim]
    mine = [c for c in fleet.clients if c.node == victim]
    if not mine:
        raise RuntimeError(f"node {node.name} has no clients to fail over")
    others = [n for n in cluster.nodes if n.state == "up" and n is not node]
    names = [n.name for n in cluster.nodes]
    rest = [c for c in fleet.clients if c.node != victim]
    _gaps(rest, names)
    m0 = await _scrape(others)
    since = time.perf_counter_ns()
    os.kill(node.pid, how)
    node.state = "killed" if how is signal.SIGKILL else "hung"
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if all(_heard_after(c, since) is not None for c in mine):
            break
        await asyncio.sleep(0.05)
    times = [_heard_after(c, since) for c in mine]
    survivors = _gaps(rest, names)
    m1 = await _scrape(others)
    relay = {
        n.name: {
            k: round(_total(b, name) - _total(a, name))
            for k, name in (
                ("received", "voice_cluster_relay_received_total"),
                ("mirror_drops", "voice_cluster_relay_mirror_drops_total"),
                ("refused", "voice_cluster_relay_refused_total"),
                ("send_drops", "voice_cluster_relay_send_drops_total"),
                ("reowned", "voice_cluster_channels_reowned_total"),
            )
        }
        for n, a, b in zip(others, m0, m1, strict=True)
    }
    landed = sorted({cluster.nodes[c.node].name for c in mine if c.node != victim})
    reasons = sorted({why.value for c in mine for _t, why in c.lost[-1:]})
    return {
        "node": node.name,
        "signal": how.name,
        "clients": len(mine),
        "s": time_to_fraction(times),
        "heard_again_s": distribution(times),
        "joined_again_s": distribution([_joined_after(c, since) for c in mine]),
        "landed_on": landed,
        "lost_as": reasons,
        "failed_tries": dict(Counter(f for c in mine for t, f in c.failures if t >= since)),
        "relay_meanwhile": relay,
        "other_listeners_gap_ms": survivors,
    }


async def _run(opts: Options, redis_url: str, redis_pid: int | None, pg_url: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        cluster = Cluster(Path(tmp), redis_url, pg_url)
        fleet = Fleet(cluster, "ops")
        try:
            await cluster.add("a", channels=("ops", "solo"))
            await cluster.add("b")
            await cluster.add("c")
            one = await _one_node(cluster, opts.members, opts.seconds, opts.warmup)
            span, talker, _ = await _span(cluster, fleet, opts.members, opts.seconds, opts.warmup)
            d = await cluster.add("d")  # empty until c's clients come
            d.group = _group(cluster, d, "ops")
            await asyncio.sleep(opts.settle)  # d's report in Redis, every node knows it
            kill = await _failover(cluster, fleet, 2, signal.SIGKILL, opts.failover_within)
            await asyncio.sleep(opts.settle)
            hang = await _failover(cluster, fleet, 3, signal.SIGSTOP, opts.failover_within)
            os.kill(d.pid, signal.SIGKILL)  # hung for good: out of the outage's way
            d.state = "killed"
            await asyncio.sleep(opts.settle)
            outage: dict[str, Any]
            if redis_pid is None:
                outage = {"skipped": "--redis-url given: that Redis is not ours to stop"}
            else:
                live = [cl for cl in fleet.clients if cluster.nodes[cl.node].state == "up"]
                outage = await _redis_outage(cluster, redis_pid, live, opts.outage, opts.after)
            talker.talking = False
        finally:
            await fleet.stop()
            await cluster.close()
    return one, span, outage, kill, hang


@dataclass(frozen=True)
class Options:
    members: int = 20  # per node
    seconds: float = 10.0
    warmup: float = 2.0
    outage: float = 15.0
    settle: float = 3.0
    failover_within: float = 30.0
    after: float = 10.0  # watched after Redis returns

    @classmethod
    def quick(cls) -> Options:
        return cls(
            members=3, seconds=2.0, warmup=0.5, outage=3.0, settle=2.0, failover_within=20.0,
            after=3.0,
        )  # fmt: skip


@contextlib.contextmanager
def _stores(redis_url: str | None, pg_url: str | None) -> Iterator[tuple[str, int | None, str]]:
    with contextlib.ExitStack() as stack:
        redis_pid: int | None = None
        if redis_url is None:
            from voice_server.bench.redisserver import running_redis

            server = stack.enter_context(running_redis())
            redis_url = server.url
            assert server.proc is not None
            redis_pid = server.proc.pid
        if pg_url is None:
            from voice_server.bench.pgserver import running_postgres

            pg_url = stack.enter_context(running_postgres()).new_database("bench")
        yield redis_url, redis_pid, pg_url


def run_cluster_bench(
    opts: Options | None = None, *, redis_url: str | None = None, database_url: str | None = None
) -> dict[str, Any]:
    """Every phase, then the comparison. Must be called with no event loop running."""
    opts = opts or Options()
    if opts.members < 2 or opts.seconds <= 0 or opts.warmup < 0 or opts.outage <= 0:
        raise ValueError("need members >= 2, seconds > 0, warmup >= 0, outage > 0")
    load0 = os.getloadavg()
    with _stores(redis_url, database_url) as (redis, redis_pid, pg):
        one, span, outage, kill, hang = asyncio.run(_run(opts, redis, redis_pid, pg))
    ratio = round(span["cpu_us_per_copy"] / one["cpu_us_per_copy"], 3)
    # the span's CPU beyond one node's and two idle nodes', per relayed datagram
    wall = span["window_seconds"]
    one_cores = sum(one["cpu_cores"].values())
    extra = span["cpu_seconds"] / wall - one_cores - 2 * one["idle_node_cores"]
    per_relayed = round(extra * wall * 1e6 / span["relayed"], 1) if span["relayed"] else None
    hop = span["hop_ms"]
    meets = {
        "hop_p99_ms": None if hop is None else hop["p99"] <= TARGETS["hop_p99_ms"],
        "kill_s": kill["s"] is not None and kill["s"] <= TARGETS["kill_s"],
        "hang_s": hang["s"] is not None and hang["s"] <= TARGETS["hang_s"],
        "outage_max_gap_ms": None,
        "rejoin_s": None,
    }
    if "skipped" not in outage:
        gap, rejoin = outage["max_gap_ms"], outage["rejoin_s"]
        meets["outage_max_gap_ms"] = gap is not None and gap <= TARGETS["outage_max_gap_ms"]
        meets["rejoin_s"] = rejoin is not None and rejoin <= TARGETS["rejoin_s"]
    return {
        "load": {
            "nodes": 3,
            "members_per_node": opts.members,
            "talkers": 1,
            "listeners_silent": True,
            "one_node": f"the same {3 * opts.members} members on node a",
        },
        "options": dataclasses.asdict(opts),
        "one_node": one,
        "span": span,
        "hop": {"added_ms": hop},
        "cpu_ratio": ratio,
        "relay_cpu": {
            "extra_cores": round(extra, 4),
            "us_per_relayed": per_relayed,
            "how": "span's three nodes - one node's - 2 x an idle node's (measured in the "
            "one-node window), per relayed datagram (media to the owner + mirrors)",
        },
        "failover": {
            "kill_s": kill["s"],
            "hang_s": hang["s"],
            "kill": kill,
            "hang": hang,
            "client_rule": CLIENT_RULE,
            "heard_again": f"{HEARD:.0%} of the node's clients got a packet of the talker "
            "(on node b) on their new node; times from the signal",
        },
        "redis_outage": outage,
        "targets": TARGETS,
        "meets_targets": meets,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load0],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
    }


def format_summary(result: dict[str, Any]) -> str:
    one, span, fo, out = (
        result["one_node"],
        result["span"],
        result["failover"],
        result["redis_outage"],
    )
    hop = result["hop"]["added_ms"] or {}
    load = result["load"]
    rows = [
        ("what", "figure", "target"),
        (
            "one node: CPU per copy",
            f"{one['cpu_us_per_copy']} us ({one['copies_per_second']} copies/s)",
            "",
        ),
        (
            "span 3 nodes: CPU per copy",
            f"{span['cpu_us_per_copy']} us (x{result['cpu_ratio']} of one node)",
            "",
        ),
        (
            "span: extra CPU per relayed datagram",
            f"{result['relay_cpu']['us_per_relayed']} us (all CPU / relayed: "
            f"{span['cpu_us_per_relayed']} us)",
            "",
        ),
        ("hop added p50 / p99", f"{hop.get('p50')} / {hop.get('p99')} ms", "p99 <= 2 ms"),
        (
            "failover.kill_s (95 %)",
            f"{fo['kill_s']} s (p50 {fo['kill']['heard_again_s']['p50']}, max "
            f"{fo['kill']['heard_again_s']['max']})",
            "<= 3 s",
        ),
        (
            "failover.hang_s (95 %)",
            f"{fo['hang_s']} s (p50 {fo['hang']['heard_again_s']['p50']}, max "
            f"{fo['hang']['heard_again_s']['max']})",
            "<= 6 s",
        ),
    ]
    if "skipped" in out:
        rows.append(("redis outage", out["skipped"], ""))
    else:
        rows.append(
            (
                f"redis down {out['outage_seconds']:.0f} s: max gap",
                f"{out['max_gap_ms']} ms ({out['max_gap_while_down_ms']} ms while down)",
                "<= 100 ms",
            )
        )
        rows.append(("redis back: joins again", f"{out['rejoin_s']} s", "<= 5 s"))
    width = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = [
        f"load: 3 nodes x {load['members_per_node']} members, one talker (on b; a owns the "
        f"channel); load average {result['machine']['loadavg_before']}",
    ]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, width, strict=True)) for r in rows]
    lines.append(f"client rule: {fo['client_rule']}")
    return "\n".join(lines)
