"""The load generator's shared receive socket: a loopback address per participant on one socket."""

from __future__ import annotations

import socket
import time

import pytest

from voice_server.sim.shared_udp import AVAILABLE, SharedUdp

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="recvmmsg (Linux) is not available")


def _server() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def test_each_endpoint_sends_from_its_own_address_and_gets_only_its_own_datagrams() -> None:
    server = _server()
    shared = SharedUdp(net=7)
    time.sleep(0.02)  # Linux switches receive timestamps on a moment later (see media.rxtime)
    got: dict[str, list[tuple[bytes, int]]] = {"a": [], "b": []}
    try:
        remote = server.getsockname()
        a = shared.endpoint(remote, lambda d, t: got["a"].append((d, t)))
        b = shared.endpoint(remote, lambda d, t: got["b"].append((d, t)))
        assert a.ip != b.ip and a.ip.startswith("127.7.") and b.ip.startswith("127.7.")
        assert a.getsockname() == (a.ip, shared.port)

        a.send(b"from a")
        b.send(b"from b")
        seen = {}
        for _ in range(2):
            data, addr = server.recvfrom(2048)
            seen[data] = addr
        # the server tells participants apart by their source address, as it would real peers
        assert seen[b"from a"] == (a.ip, shared.port)
        assert seen[b"from b"] == (b.ip, shared.port)

        sent = time.perf_counter_ns()
        for i in range(300):  # more than one recvmmsg batch
            server.sendto(b"to a %d" % i, seen[b"from a"])
        server.sendto(b"to b", seen[b"from b"])
        time.sleep(0.05)  # read late: arrival times still say when the kernel got them
        assert shared.drain_count() == 301
        assert [d for d, _ in got["a"]] == [b"to a %d" % i for i in range(300)]
        assert [d for d, _ in got["b"]] == [b"to b"]
        assert all(0 <= t - sent < 40_000_000 for _, t in got["a"] + got["b"])
        assert shared.drain_count() == 0

        # a datagram for an address nobody holds (a participant that left) is counted, not lost
        b.close()
        server.sendto(b"late", seen[b"from b"])
        time.sleep(0.02)
        assert (
            shared.drain_count() == 1
            and shared.unknown == 1
            and got["b"] == [(b"to b", got["b"][0][1])]
        )
        # its address is handed to the next participant
        c = shared.endpoint(remote, lambda d, t: None)
        assert c.ip == b.ip and len(shared) == 2
    finally:
        shared.close()
        server.close()
