"""A media worker's relay socket: a talker's packets to its channel's owner, what the owner
forwards once to each other worker with listeners, refusals counted."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

from voice_server.media.quiet_gate import QuietGate
from voice_server.media.relay import WorkerRelay
from voice_server.media.relay_packet import Kind, RelayPacket, pack, slot_ssrcs
from voice_server.media.route import PLAIN, Route
from voice_server.media.rtp import build_rtp
from voice_server.media.source import ServerSource


class FakeRouter:
    def __init__(self, plane: FakePlane) -> None:
        self.plane = plane

    def mirror(self, talker: str, slot: int, data: bytes, t0_ns: int, key: Any = PLAIN) -> bool:
        self.plane.got.append(("mirror", talker, slot, data) + (() if key == PLAIN else (key,)))
        self.plane.delivered.set()
        return slot == 1


class FakePlane:
    def __init__(self) -> None:
        self.sources: dict[str, tuple[ServerSource, Route, bool]] = {}
        self.got: list[tuple[Any, ...]] = []
        self.delivered = asyncio.Event()
        self.routers = {"ops": FakeRouter(self)}
        self.arbitrated: dict[str, Any] = {}

    def attach_source(
        self, source_id: str, route: Route, *, logged: bool = True, arbitrated: Any = None
    ) -> Any:
        source = ServerSource(source_id, payload_type=111)

        def sink(plain: bytes, t0_ns: int) -> None:
            self.got.append(("media", source_id, plain))
            self.delivered.set()

        source.sink = sink
        self.sources[source_id] = (source, route, logged)
        self.arbitrated[source_id] = arbitrated
        return source

    def detach_source(self, source_id: str) -> None:
        self.sources.pop(source_id, None)

    def route_source(self, source_id: str, route: Route, *, arbitrated: Any = None) -> None:
        source, _, logged = self.sources[source_id]
        self.sources[source_id] = (source, route, logged)
        self.arbitrated[source_id] = arbitrated


class Peer:
    session_id = "talker"
    level_ext_id = 1


@contextlib.contextmanager
def _relays(
    n: int, seals: list[bytes | None] | None = None
) -> Iterator[tuple[list[WorkerRelay], list[FakePlane], bytes]]:
    key = secrets.token_bytes(32)
    planes = [FakePlane() for _ in range(n)]
    seals = seals or [None] * n
    relays = [
        WorkerRelay(index=i, incarnation=1, key=key, plane=planes[i], seal_key=seals[i])
        for i in range(n)
    ]
    ports = [r.open() for r in relays]
    for r in relays:
        r.peers.update({i: 1 for i in range(n)})
        r.addresses = {i: ("127.0.0.1", p) for i, p in enumerate(ports)}
    try:
        yield relays, planes, key
    finally:
        for r in relays:
            r.close()


async def test_a_talker_of_a_channel_owned_elsewhere_goes_to_the_owner_only() -> None:
    with _relays(3) as (relays, planes, _):
        local: list[bytes] = []
        for r in relays:
            r.set_owner("ops", 1, epoch=4)
        sink = relays[0].wrap(
            [("ops", lambda p, t: local.append(p))], Peer(), Route(("ops",), ("ops",), priority=2)
        )
        relays[0].targets.set_listening(2, ["ops"])  # listeners elsewhere: the owner's business
        sink(b"rtp-1", 0)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        assert local == []  # the owner arbitrates and forwards it, here too
        assert planes[1].got == [("media", "talker", b"rtp-1")]
        assert planes[2].got == []
        assert relays[0].sent == {"media": 1, "mirror": 0, "ping": 0}
        source, route, logged = planes[1].sources["talker"]
        assert route == Route(("ops",), (), priority=2) and logged  # tapped by the owner, once
        assert source.relayed and relays[1].is_relayed("talker")
        stats = relays[1].stats()
        assert stats["received"] == 1 and stats["added_ms"]["count"] == 1


async def test_a_channel_owned_here_or_by_nobody_is_forwarded_here() -> None:
    with _relays(2) as (relays, _, _):
        local: list[bytes] = []
        sink = relays[0].wrap([("ops", lambda p, t: local.append(p))], Peer(), Route.channel("ops"))
        sink(b"a", 0)  # no owner known: one worker's channel
        relays[0].set_owner("ops", 0, epoch=1)
        sink(b"b", 0)
        assert local == [b"a", b"b"] and relays[0].sent == {"media": 0, "mirror": 0, "ping": 0}


async def test_what_the_owner_forwards_goes_once_to_each_other_worker_with_listeners() -> None:
    with _relays(4) as (relays, planes, _):
        relays[0].targets.set_listening(0, ["ops"])  # itself: never
        relays[0].targets.set_listening(1, ["ops"])
        relays[0].targets.set_listening(2, ["hq"])  # no listener of "ops"
        relays[0].targets.set_listening(3, ["ops", "hq"])
        relays[0].mirror_out("ops", "talker", 1, b"rewritten", 0)
        relays[0].mirror_out("lab", "talker", 1, b"nobody", 0)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        await asyncio.wait_for(planes[3].delivered.wait(), 5)
        for i in (1, 3):
            assert planes[i].got == [("mirror", "talker", 1, b"rewritten")]
        assert planes[2].got == [] and planes[0].got == []
        assert relays[0].sent == {"media": 0, "mirror": 2, "ping": 0} and relays[0].packets == 1


async def test_sealed_relays_carry_packets_and_a_plain_one_refuses_them() -> None:
    seal = secrets.token_bytes(32)
    with _relays(3, [seal, seal, None]) as (relays, planes, _):
        for i in (1, 2):
            relays[0].targets.set_listening(i, ["ops"])
        relays[0].mirror_out("ops", "talker", 1, b"rewritten", 0)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        assert planes[1].got == [("mirror", "talker", 1, b"rewritten")]
        deadline = time.monotonic() + 5
        while relays[2].gate.drops["wrong_format"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert planes[2].got == [] and relays[2].gate.accepted == 0
        # and the other way: a plain datagram to a sealed receiver
        relays[2].targets.set_listening(1, ["ops"])
        relays[2].mirror_out("ops", "talker", 1, b"plain", 0)
        while relays[1].gate.drops["wrong_format"] == 0:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert relays[1].gate.accepted == 1


async def test_forged_unknown_and_stale_datagrams_are_dropped_and_counted() -> None:
    with _relays(2) as (relays, planes, key):
        relays[1].set_owner("ops", 0, epoch=5)
        target = relays[1].addresses[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
            good = RelayPacket(0, 1, 5, "ops", "talker", b"rtp")
            for forged in (
                pack(good, secrets.token_bytes(32)),  # no key
                pack(RelayPacket(5, 1, 5, "ops", "x", b"rtp"), key),  # no such worker
                pack(RelayPacket(0, 9, 5, "ops", "x", b"rtp"), key),  # a replaced incarnation
                pack(RelayPacket(0, 1, 4, "ops", "x", b"rtp"), key),  # an older owner
                b"junk",
                pack(good, key),  # the last: a real peer's
            ):
                intruder.sendto(forged, target)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        assert relays[1].gate.drops == {
            "malformed": 1,
            "bad_auth": 1,
            "unknown_peer": 2,
            "stale_epoch": 1,
            "wrong_format": 0,
            "replayed": 0,
        }
        assert planes[1].got == [("media", "talker", b"rtp")]


async def test_a_mirrored_packet_that_is_no_slot_stream_here_is_counted() -> None:
    with _relays(2) as (relays, _, _):
        relays[1]._deliver(RelayPacket(0, 1, 0, "ops", "t", b"x", slot=2, kind=Kind.MIRROR))
        relays[1]._deliver(RelayPacket(0, 1, 0, "nope", "t", b"x", slot=1, kind=Kind.MIRROR))
        assert relays[1].mirror_drops == 2


async def test_a_silent_relayed_talker_is_detached() -> None:
    with _relays(2) as (relays, planes, _):
        relays[1]._deliver(RelayPacket(0, 1, 0, "ops", "talker", b"rtp"))
        assert "talker" in planes[1].sources
        relays[1].sweep(now=10**9)
        assert "talker" not in planes[1].sources and not relays[1].is_relayed("talker")


async def test_a_talkers_new_level_or_hold_reaches_its_source_at_the_owner() -> None:
    with _relays(2) as (relays, planes, _):
        relays[1]._deliver(RelayPacket(0, 1, 0, "ops", "talker", b"a", priority=1))
        relays[1]._deliver(RelayPacket(0, 1, 0, "ops", "talker", b"b", priority=3, hold=True))
        assert planes[1].sources["talker"][1] == Route(("ops",), (), priority=3, hold=True)


def test_slot_ssrcs_are_the_same_for_one_key_distinct_and_never_zero() -> None:
    key = bytes(32)
    a = slot_ssrcs(key, "ops", 8)
    assert a == slot_ssrcs(key, "ops", 8) and len(set(a)) == 8 and 0 not in a
    assert a != slot_ssrcs(key, "hq", 8) and a != slot_ssrcs(bytes([1]) * 32, "ops", 8)


async def test_an_all_call_goes_to_each_channels_owner_with_its_audience() -> None:
    with _relays(3) as (relays, planes, _):
        local: list[tuple[str, bytes]] = []
        relays[0].set_owner("hq", 0, epoch=1)
        relays[0].set_owner("yard", 1, epoch=2)
        relays[0].set_owner("ops", 2, epoch=3)
        route = Route(("hq", "yard", "ops"), ("hq",), priority=2)
        sinks = [(c, lambda p, t, c=c: local.append((c, p))) for c in route.sends]
        sink = relays[0].wrap(sinks, Peer(), route)  # type: ignore[misc]
        sink(b"rtp", 0)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        await asyncio.wait_for(planes[2].delivered.wait(), 5)
        assert local == [("hq", b"rtp")]  # its owner is this worker: its router, once
        assert relays[0].sent == {"media": 2, "mirror": 0, "ping": 0}
        for i, channel in ((1, "yard"), (2, "ops")):
            _, got, _ = planes[i].sources["talker"]
            assert got == Route(route.sends, (), priority=2)  # the audience travels with it
            assert planes[i].arbitrated["talker"] == frozenset({channel})  # a member there only


async def test_a_direct_talks_mirror_carries_its_audience_key() -> None:
    with _relays(2) as (relays, planes, _):
        relays[0].targets.set_listening(1, ["ops"])
        direct = Route(("hq", "ops"), ("hq",), only=frozenset({"bea-1", "bea-2"}), priority=1)
        relays[0].mirror_out("ops", "talker", 1, b"rewritten", 0, direct)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        key = (frozenset({"bea-1", "bea-2"}), ("hq",))  # the filter, the channels before "ops"
        assert planes[1].got == [("mirror", "talker", 1, b"rewritten", key)]


def _level_packet(seq: int, level: int) -> bytes:
    return build_rtp(
        payload_type=111, seq=seq, timestamp=seq * 960, ssrc=7, payload=b"opus",
        audio_level=(level < 127, level), audio_level_id=1,
    )  # fmt: skip


async def test_silence_is_held_back_from_the_owner_once_quiet_and_its_lead_sent_first() -> None:
    with _relays(2) as (relays, planes, _):
        relays[0].set_owner("ops", 1, epoch=1)
        sink = relays[0].wrap([("ops", lambda p, t: None)], Peer(), Route.channel("ops"))
        ms = 1_000_000
        t = time.perf_counter_ns()
        voiced = _level_packet(1, 20)
        sink(voiced, t)  # voiced: sent
        quiet = [_level_packet(2 + i, 127) for i in range(60)]
        for i, packet in enumerate(quiet):  # 20 ms apart: sent until past hangover + attack
            sink(packet, t + (i + 1) * 20 * ms)
        sent_quiet = relays[0].sent["media"] - 1
        assert 0 < sent_quiet < 60 and relays[0].quiet["held"] == 60 - sent_quiet
        onset = _level_packet(100, 20)
        sink(onset, t + 61 * 20 * ms)  # voiced again: the last 40 ms of silence go first
        assert relays[0].quiet["lead"] == 2
        await _until_got(planes[1], 1 + sent_quiet + 3)
        got = [g[2] for g in planes[1].got]
        assert got[-3:] == [quiet[-2], quiet[-1], onset]


async def _until_got(plane: FakePlane, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(plane.got) < n:
        assert time.monotonic() < deadline, plane.got
        await asyncio.sleep(0.01)


def test_a_gate_lets_everything_through_until_quiet_and_never_holds_an_emergency() -> None:
    gate = QuietGate(threshold=50, quiet_ms=840, lead_ms=40, now_ms=0)
    silent = _level_packet(1, 127)
    assert gate.admit(silent, 1, False, 800)  # within quiet_ms of its start: sent
    assert not gate.admit(silent, 1, False, 900)  # quiet: held
    assert gate.admit(silent, 1, True, 920)  # an open emergency's window: always sent
    assert gate.admit(b"junk", 1, False, 2000)  # unreadable: the owner counts it
    assert not gate.admit(silent, 1, False, 2000) and gate.lead(2030) == [silent]


async def test_a_ping_tells_the_other_node_whether_this_one_reaches_redis() -> None:
    with _relays(2) as (relays, _, _):
        relays[0].ping((1,), True)
        for _ in range(500):
            if 0 in relays[1].heard:
                break
            await asyncio.sleep(0.01)
        assert relays[1].heard[0][1] is True
        relays[0].ping((1,), False)
        for _ in range(500):
            if relays[1].heard[0][1] is False:
                break
            await asyncio.sleep(0.01)
        assert relays[1].heard[0][1] is False
        assert relays[0].sent["ping"] == 2 and relays[1].gate.drops["malformed"] == 0
        assert relays[1].stats()["added_ms"]["count"] == 0  # no hop sample, no plane touched
