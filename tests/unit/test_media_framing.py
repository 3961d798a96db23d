"""RFC 4571 framing and the ICE-TCP bookkeeping (pure: no sockets)."""

from __future__ import annotations

import pytest

from voice_server.media.errors import PacketError
from voice_server.media.framing import FrameDecoder, frame
from voice_server.media.tcp_peers import Admission, OutQueue, TcpAddress


def test_frames_survive_any_split_of_the_stream() -> None:
    packets = [b"a" * 20, b"", b"b" * 300, b"c"]
    stream = b"".join(frame(p) for p in packets)
    for step in (1, 2, 3, 7, 64, len(stream)):
        dec = FrameDecoder()
        got: list[bytes] = []
        for i in range(0, len(stream), step):
            got += dec.feed(stream[i : i + step])
        assert got == [p for p in packets if p]  # an empty frame carries nothing
        assert dec.pending == 0


def test_a_length_over_the_limit_is_refused_before_buffering() -> None:
    dec = FrameDecoder(max_frame=100)
    assert dec.feed(frame(b"x" * 100)) == [b"x" * 100]
    with pytest.raises(PacketError):
        dec.feed(b"\xff\xff")
    assert dec.pending == 0
    with pytest.raises(PacketError):
        frame(b"x" * 70000)


def test_tcp_addresses_never_equal_udp_ones() -> None:
    tcp, udp = TcpAddress("10.0.0.5", 5000), ("10.0.0.5", 5000)
    assert tcp != udp and udp != tcp and tcp == TcpAddress("10.0.0.5", 5000)
    table = {udp: "udp", tcp: "tcp"}
    assert table[udp] == "udp" and table[TcpAddress("10.0.0.5", 5000)] == "tcp"
    assert tcp[0] == "10.0.0.5" and tcp[1] == 5000


def test_out_queue_drops_oldest_whole_frames_and_counts() -> None:
    q = OutQueue(limit=100)
    for i in range(5):
        assert q.push(bytes([i]) * 30) == (1 if i >= 3 else 0)
    assert q.size == 90 and q.dropped == 2
    assert bytes(q.view()) == bytes([2]) * 30  # frames 0 and 1 went first


def test_out_queue_keeps_a_partly_written_frame() -> None:
    q = OutQueue(limit=100)
    q.push(b"a" * 60)
    q.consume(10)  # the socket took part of it: the rest must follow, or framing breaks
    q.push(b"b" * 30)
    assert q.push(b"c" * 30) == 1  # drops "b", never the head
    assert bytes(q.view()) == b"a" * 50
    q.consume(50)
    assert bytes(q.view()) == b"c" * 30
    assert q.push(b"d" * 200) == 1 and q.size == 30  # larger than the limit: dropped itself


def test_admission_limits_pending_connections() -> None:
    adm = Admission(max_pending=3, max_per_host=2, deadline=5.0)
    a1, a2, a3 = TcpAddress("1.1.1.1", 1), TcpAddress("1.1.1.1", 2), TcpAddress("1.1.1.1", 3)
    assert adm.admit(a1, 0) is None and adm.admit(a2, 0) is None
    assert adm.admit(a3, 0) == "too_many_from_host"
    assert adm.admit(TcpAddress("2.2.2.2", 1), 1) is None
    assert adm.admit(TcpAddress("3.3.3.3", 1), 1) == "too_many_pending"
    adm.settle(a1)  # it sent a valid check
    adm.settle(a1)  # settling twice is harmless
    assert adm.admit(a3, 2) is None
    assert adm.expired(5.5) == [a2]
    adm.settle(a2)
    adm.settle(a3)
    adm.settle(TcpAddress("2.2.2.2", 1))
    assert adm.pending == {} and adm.per_host == {}
