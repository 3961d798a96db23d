"""RFC 7983 first-byte demultiplexing and RFC 5761 RTP/RTCP separation."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media import stun
from voice_server.media.demux import Kind, classify, is_rtcp


def test_ranges_follow_rfc7983() -> None:
    expected = {b: Kind.UNKNOWN for b in range(256)}
    expected.update({b: Kind.STUN for b in range(4)})
    expected.update({b: Kind.DTLS for b in range(20, 64)})
    expected.update({b: Kind.RTP for b in range(128, 192)})
    for b, kind in expected.items():
        assert classify(bytes([b, 0, 0])) is kind, b


def test_empty_datagram_is_unknown() -> None:
    assert classify(b"") is Kind.UNKNOWN
    assert not is_rtcp(b"")
    assert not is_rtcp(b"\x80")


def test_real_packets_are_classified() -> None:
    check = stun.build_binding_request(username="a:b", password=b"p", priority=1, tie_breaker=2)
    assert classify(check) is Kind.STUN
    client_hello = b"\x16\xfe\xfd" + bytes(10)
    assert classify(client_hello) is Kind.DTLS
    rtp_opus = bytes([0x90, 111]) + bytes(10)
    assert classify(rtp_opus) is Kind.RTP and not is_rtcp(rtp_opus)
    marker = bytes([0x80, 0x80 | 111]) + bytes(10)
    assert not is_rtcp(marker)


def test_rtcp_types_are_recognised() -> None:
    for pt in range(192, 224):
        assert is_rtcp(bytes([0x81, pt, 0, 1]))
    for pt in (191, 224, 111, 0x80 | 96):
        assert not is_rtcp(bytes([0x81, pt, 0, 1]))
    assert not is_rtcp(bytes([0x41, 200, 0, 1]))  # version 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=8))
def test_any_bytes_are_classified_without_error(data: bytes) -> None:
    assert classify(data) in Kind
    is_rtcp(data)
