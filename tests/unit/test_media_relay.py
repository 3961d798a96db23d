"""A media worker's relay socket: once per other worker with listeners, refusals counted,
relayed talkers forwarded as server-side sources (never tapped, never relayed again)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from voice_server.media.relay import WorkerRelay
from voice_server.media.relay_packet import RelayPacket, pack
from voice_server.media.route import Route
from voice_server.media.source import ServerSource


class FakePlane:
    def __init__(self) -> None:
        self.sources: dict[str, tuple[ServerSource, Route, bool]] = {}
        self.got: list[tuple[str, bytes]] = []
        self.delivered = asyncio.Event()

    def attach_source(self, source_id: str, route: Route, *, logged: bool = True) -> Any:
        source = ServerSource(source_id, payload_type=111)

        def sink(plain: bytes, t0_ns: int) -> None:
            self.got.append((source_id, plain))
            self.delivered.set()

        source.sink = sink
        self.sources[source_id] = (source, route, logged)
        return source

    def detach_source(self, source_id: str) -> None:
        self.sources.pop(source_id, None)


class Peer:
    session_id = "talker"
    level_ext_id = 1


@contextlib.contextmanager
def _relays(n: int) -> Iterator[tuple[list[WorkerRelay], list[FakePlane], bytes]]:
    key = secrets.token_bytes(32)
    names = {i: f"voice-relay-test-{secrets.token_hex(6)}-{i}" for i in range(n)}
    planes = [FakePlane() for _ in range(n)]
    relays = [
        WorkerRelay(index=i, incarnation=1, key=key, addresses=names, plane=planes[i])
        for i in range(n)
    ]
    for r in relays:
        r.peers.update({i: 1 for i in range(n)})
        r.open()
    try:
        yield relays, planes, key
    finally:
        for r in relays:
            r.close()


async def test_a_talker_packet_goes_once_to_each_worker_with_listeners_only() -> None:
    with _relays(3) as (relays, planes, _):
        local: list[bytes] = []
        sink = relays[0].wrap(lambda p, t: local.append(p), Peer(), "ops", 2)
        relays[0].targets.set_listening(1, ["ops"])  # worker 2 has no listener of "ops"
        sink(b"rtp-1", 0)
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        assert local == [b"rtp-1"]  # its own listeners still get it
        assert planes[1].got == [("talker", b"rtp-1")]
        assert planes[2].got == []
        assert relays[0].sent == 1 and relays[0].packets == 1
        source, route, logged = planes[1].sources["talker"]
        assert route == Route(("ops",), ()) and not logged  # its own worker taps it
        assert source.relayed and relays[1].is_relayed("talker")
        stats = relays[1].stats()
        assert stats["received"] == 1 and stats["added_ms"]["count"] == 1


async def test_no_listener_elsewhere_means_no_datagram() -> None:
    with _relays(2) as (relays, _, _):
        sink = relays[0].wrap(lambda p, t: None, Peer(), "ops", 1)
        sink(b"rtp", 0)
        assert relays[0].sent == 0 and relays[0].packets == 0


async def test_forged_and_unknown_datagrams_are_dropped_and_counted() -> None:
    with _relays(2) as (relays, planes, key):
        target = "\0" + relays[1].addresses[1]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as intruder:
            good = RelayPacket(0, 1, 0, "ops", "talker", b"rtp")
            intruder.sendto(pack(good, secrets.token_bytes(32)), target)  # no key
            intruder.sendto(pack(RelayPacket(5, 1, 0, "ops", "x", b"rtp"), key), target)
            intruder.sendto(pack(RelayPacket(0, 9, 0, "ops", "x", b"rtp"), key), target)
            intruder.sendto(b"junk", target)
            intruder.sendto(pack(good, key), target)  # the last: a real peer's
        await asyncio.wait_for(planes[1].delivered.wait(), 5)
        assert relays[1].gate.drops == {
            "malformed": 1,
            "bad_auth": 1,
            "unknown_peer": 2,
            "stale_epoch": 0,
        }
        assert planes[1].got == [("talker", b"rtp")]


async def test_a_silent_relayed_talker_is_detached() -> None:
    with _relays(2) as (relays, planes, _):
        relays[1]._deliver(RelayPacket(0, 1, 0, "ops", "talker", b"rtp"))
        assert "talker" in planes[1].sources
        relays[1].sweep(now=10**9)
        assert "talker" not in planes[1].sources and not relays[1].is_relayed("talker")
