"""`bench network`'s jitter relay: each datagram delayed on its own within [0, 2 × jitter], both
ways through real sockets (the server sees the relay's address, the phone gets the answers from
the socket it wrote to), and the nat rule that sends the phones' UDP to it."""

from __future__ import annotations

import random
import socket
import statistics
import time

from voice_server.bench.jitter import SOURCE, JitterRelay, delay_ms, rules


def test_delays_are_uniform_between_zero_and_twice_the_jitter() -> None:
    rng = random.Random(1)
    got = [delay_ms(rng, 40.0) for _ in range(20_000)]
    assert 0.0 <= min(got) < 1.0 and 79.0 < max(got) <= 80.0
    assert abs(statistics.mean(got) - 40.0) < 1.0
    assert delay_ms(rng, 0.0) == 0.0


def test_the_rule_redirects_the_phones_udp_for_the_media_port_but_not_the_relays_own() -> None:
    table = rules(40000, 41000)
    assert "type nat hook output" in table
    assert f"ip saddr != {SOURCE} udp dport 40000 redirect to :41000;" in table


def test_datagrams_go_to_the_server_and_back_through_the_relay() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(10)
    phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    phone.bind(("127.0.0.1", 0))
    phone.settimeout(10)
    relay = JitterRelay(server.getsockname(), up_ms=5.0, down_ms=5.0).start()
    try:
        seen_from = set()
        for i in range(20):
            phone.sendto(b"ping %d" % i, ("127.0.0.1", relay.port))
        got = sorted(server.recvfrom(100) for _ in range(20))
        for data, addr in got:
            seen_from.add(addr)
            server.sendto(data.replace(b"ping", b"pong"), addr)
        back = sorted(phone.recvfrom(100) for _ in range(20))
        assert len(seen_from) == 1 and next(iter(seen_from))[0] == SOURCE  # one socket per phone
        assert sorted(d for d, _ in back) == sorted(b"pong %d" % i for i in range(20))
        assert {a for _, a in back} == {("127.0.0.1", relay.port)}
        deadline = time.monotonic() + 10  # the count follows the last send
        while relay.forwarded < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (relay.forwarded, relay.dropped) == (40, 0)
    finally:
        relay.stop()
        server.close()
        phone.close()
