"""The fan-out loop: every listener but the talker gets its own SRTP copy, batched or not."""

from __future__ import annotations

import ctypes
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from voice_server.histogram import LatencyHistogram
from voice_server.media import native
from voice_server.media.counters import MediaCounters
from voice_server.media.fanout import CHUNK, Fanout
from voice_server.media.sendmany import AVAILABLE, MessageBatch, sockaddr
from voice_server.media.srtp import DEFAULT_PROFILES, make_sessions
from voice_server.media.srtp_fast import fast_session
from voice_server.sim.audio import rtp_packet

PROFILE = DEFAULT_PROFILES[0]
KEYLEN = PROFILE.key_length + PROFILE.salt_length


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    socks = []
    for _ in range(CHUNK + 8):  # more than one chunk
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(2.0)
        socks.append(s)
    yield socks
    for s in socks:
        s.close()


def _packet() -> bytes:
    return rtp_packet(
        payload_type=111,
        marker=False,
        seq=5,
        timestamp=960,
        ssrc=7,
        level=20,
        stamp_ns=0,
        payload=b"x" * 50,
    )


@pytest.mark.parametrize("mode", ["native", "sendmmsg", "sendto"])
def test_every_listener_but_the_talker_gets_its_own_decryptable_copy(
    receivers: list[socket.socket], mode: str
) -> None:
    batched = mode != "sendto"
    if batched and not AVAILABLE:
        pytest.skip("sendmmsg is Linux only")
    if mode == "native" and native.load() is None:
        pytest.skip("no C compiler: the native fan-out is not built")
    keys = [(os.urandom(KEYLEN), os.urandom(KEYLEN)) for _ in receivers]
    targets = []
    for s, k in zip(receivers, keys, strict=True):
        _rx, tx = make_sessions(PROFILE, k)
        targets.append((object(), fast_session(tx), s.getsockname()))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    counters, hist = MediaCounters(), LatencyHistogram()
    try:
        fanout = Fanout(
            targets,
            sendto=sender.sendto,
            counters=counters,
            histogram=hist,
            fd=sender.fileno() if batched else None,
            use_native=mode == "native",
        )
        assert fanout.batched is batched and fanout.native is (mode == "native")
        talker = targets[3][0]  # members are compared by identity
        fanout.send(_packet(), talker, 0)
    finally:
        sender.close()

    n = len(receivers) - 1
    assert counters.packets_out == hist.count == n and counters.drop_send_error == 0
    total = 0
    for i, (s, k) in enumerate(zip(receivers, keys, strict=True)):
        if i == 3:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(2048)
            continue
        data = s.recv(2048)
        total += len(data)
        listener_rx, _ = make_sessions(PROFILE, (k[1], k[0]))
        assert listener_rx.unprotect(data) == _packet()
    assert counters.bytes_out == total


@pytest.mark.parametrize("case", ["bad socket", "too long to protect"])
def test_native_copies_that_fail_are_counted_and_the_rest_still_go(
    receivers: list[socket.socket], case: str
) -> None:
    if native.load() is None:
        pytest.skip("no C compiler: the native fan-out is not built")
    targets = []
    for s in receivers:
        _rx, tx = make_sessions(PROFILE, (os.urandom(KEYLEN), os.urandom(KEYLEN)))
        targets.append((object(), fast_session(tx), s.getsockname()))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    counters, hist = MediaCounters(), LatencyHistogram()
    try:
        fd = -1 if case == "bad socket" else sender.fileno()
        fanout = Fanout(targets, sendto=sender.sendto, counters=counters, histogram=hist, fd=fd)
        assert fanout.native
        data = _packet() if case == "bad socket" else _packet() + bytes(1500)
        fanout.send(data, targets[0][0], 0)
        fanout.send(data, object(), 0)  # nobody's own: every target
    finally:
        sender.close()
    n = len(receivers)
    assert counters.packets_out == hist.count == 0 and counters.bytes_out == 0
    assert counters.drop_send_error == (n - 1) + n


def test_a_refused_datagram_is_counted_and_skipped() -> None:
    if not AVAILABLE:
        pytest.skip("sendmmsg is Linux only")
    buf = bytearray(8)
    address = ctypes.addressof((ctypes.c_char * 8).from_buffer(buf))
    names = [sockaddr(("127.0.0.1", 9))] * 3
    batch = MessageBatch([address] * 3, [n for n in names if n is not None])
    for i in range(3):
        batch.iov(i).iov_len = 8
    assert batch.send(-1, 0, 3) == (0, 3, 24)  # a bad descriptor refuses every datagram


def test_socket_addresses_are_packed_for_both_families() -> None:
    v4 = sockaddr(("127.0.0.1", 40000))
    assert v4 is not None and len(v4) == 16
    assert struct.unpack("=H", v4[:2])[0] == socket.AF_INET and v4[2:8] == bytes(
        [0x9C, 0x40, 127, 0, 0, 1]
    )
    v6 = sockaddr(("::1", 40000))
    assert v6 is not None and len(v6) == 28 and v6[8:24] == bytes(15) + b"\x01"
    assert sockaddr(("not an address", 1)) is None
