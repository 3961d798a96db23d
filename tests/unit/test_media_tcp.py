"""ICE-TCP (RFC 6544) on real loopback sockets, in-process: checks, framing, bad peers, a slow
reader. Waits are on events with generous deadlines (never timing asserts)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.dtls import Certificate
from voice_server.media.endpoint import MediaEndpoint
from voice_server.media.fanout import Fanout
from voice_server.media.framing import frame
from voice_server.media.srtp_fast import SrtpCodec
from voice_server.media.stun import StunClass, build_binding_request
from voice_server.media.stun import parse as parse_stun
from voice_server.media.tcp_peers import Admission, TcpAddress
from voice_server.media.transport import Transport

CERT = Certificate.generate()


async def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def endpoint() -> AsyncIterator[MediaEndpoint]:
    ep = MediaEndpoint(MediaCounters(), lambda t: None)
    ep.open("127.0.0.1", 0)
    ep.open_tcp("127.0.0.1", 0)
    yield ep
    ep.close()


async def connect(ep: MediaEndpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    assert ep.tcp is not None
    return await asyncio.open_connection("127.0.0.1", ep.tcp.port)


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 20))
    return await asyncio.wait_for(reader.readexactly(n), 20)


def check(t: Transport) -> bytes:
    return build_binding_request(
        username=f"{t.ufrag}:cliU", password=t.pwd.encode(), priority=1, tie_breaker=7
    )


async def test_a_check_over_tcp_is_answered_framed_and_media_goes_back_on_tcp(
    endpoint: MediaEndpoint,
) -> None:
    t = Transport("s1", "srvU", "p" * 24, CERT)
    endpoint.register(t)
    reader, writer = await connect(endpoint)
    req = check(t)
    writer.write(frame(req[:10]))  # garbage first: a frame that is no STUN is dropped
    writer.write(frame(req)[:7])  # the check split across writes
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.write(frame(req)[7:])
    reply = parse_stun(await read_frame(reader))
    assert reply.message_class is StunClass.SUCCESS
    local = writer.get_extra_info("sockname")
    addr = TcpAddress(local[0], local[1])
    assert reply.xor_mapped_address == tuple(addr)
    assert endpoint.by_addr[addr] is t and t.remote == addr and t.path == "tcp"
    assert ("127.0.0.1", local[1]) not in endpoint.by_addr  # never a UDP address
    assert endpoint.tcp is not None and endpoint.tcp.pending == 0
    endpoint.sendto(b"\x80hello", addr)
    assert await read_frame(reader) == b"\x80hello"
    endpoint.unregister(t)  # the transport goes: so does its connection
    assert await asyncio.wait_for(reader.read(), 20) == b""
    assert endpoint.counters.tcp_closed == 1
    writer.close()


async def test_an_over_long_frame_closes_the_connection(endpoint: MediaEndpoint) -> None:
    reader, writer = await connect(endpoint)
    writer.write(struct.pack("!H", 60000) + b"x" * 100)
    assert await asyncio.wait_for(reader.read(), 20) == b""
    assert endpoint.counters.tcp_bad_frames == 1
    writer.close()


async def test_silent_and_excess_connections_are_closed_or_refused() -> None:
    ep = MediaEndpoint(MediaCounters(), lambda t: None)
    ep.open("127.0.0.1", 0)
    ep.open_tcp("127.0.0.1", 0)
    assert ep.tcp is not None
    ep.tcp.admission = Admission(max_pending=50, max_per_host=3, deadline=0.3)
    try:
        conns = [await connect(ep) for _ in range(4)]
        await until(lambda: ep.counters.tcp_refused == 1, "the 4th connection refused")
        await until(lambda: ep.counters.tcp_expired == 3, "silent connections closed")
        for reader, writer in conns:
            assert await asyncio.wait_for(reader.read(), 20) == b""
            writer.close()
        assert ep.tcp.open_connections == 0 and ep.tcp.admission.per_host == {}
    finally:
        ep.close()


async def test_a_reader_that_never_reads_costs_a_bounded_queue(endpoint: MediaEndpoint) -> None:
    t = Transport("s1", "srvU", "p" * 24, CERT)
    endpoint.register(t)
    raw = socket.create_connection(("127.0.0.1", endpoint.tcp.port if endpoint.tcp else 0))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall(frame(check(t)))
    await until(lambda: t.remote is not None, "the check")
    addr = t.remote
    assert isinstance(addr, TcpAddress)
    packet = b"\x80" + b"v" * 199
    for _ in range(20000):  # 4 MB to a peer that reads nothing
        endpoint.sendto(packet, addr)
    assert endpoint.tcp is not None
    conn = endpoint.tcp.conns[addr]
    assert conn.queue.size <= 64 * 1024
    assert endpoint.counters.tcp_out_dropped > 10000
    raw.close()


class _Codec:
    def protect(self, packet: bytes) -> bytes | None:
        return b"P" + packet


def test_tcp_copies_are_sent_apart_from_the_udp_batch() -> None:
    sent: list[tuple[bytes, tuple[str, int]]] = []
    codec: SrtpCodec = _Codec()  # type: ignore[assignment]
    udp, tcp = ("127.0.0.1", 9), TcpAddress("127.0.0.1", 9)
    fan = Fanout(
        [("a", codec, udp), ("b", codec, tcp), ("c", codec, tcp)],
        sendto=lambda d, a: sent.append((d, a)),
        counters=MediaCounters(),
        histogram=LatencyHistogram(),
    )
    fan.send(b"x", "c", 0)
    assert sent == [(b"Px", udp), (b"Px", tcp)]
    assert type(sent[1][1]) is TcpAddress
