"""RTP: header reader, audio level, in-place rewrite; round trips with aiortc's RtpPacket."""

from __future__ import annotations

import dataclasses

import pylibsrtp
import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap
from aiortc.rtp import RtpPacket as AiortcRtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media import rtp
from voice_server.media.errors import PacketError
from voice_server.media.rtp import RtpPacket


def _ext_map(**ids: int) -> HeaderExtensionsMap:
    uris = {
        "audio_level": rtp.AUDIO_LEVEL_URI,
        "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs_send_time": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
    }
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uris[name]) for name, i in ids.items()
            ]
        )
    )
    return m


def _aiortc_packet(audio_level: tuple[bool, int] | None = (True, 42)) -> AiortcRtpPacket:
    p = AiortcRtpPacket(
        payload_type=111,
        marker=1,
        sequence_number=65535,
        timestamp=0xFFFFFF00,
        ssrc=0x12345678,
        payload=b"\xfc" + bytes(40),
    )
    p.extensions.audio_level = audio_level
    p.extensions.mid = "0"
    p.extensions.abs_send_time = 0x123456
    return p


@pytest.mark.parametrize("level_id", [1, 2, 14])
def test_aiortc_packet_header_and_audio_level_are_read(level_id: int) -> None:
    ids = {"audio_level": level_id, "mid": 3 if level_id != 3 else 4, "abs_send_time": 5}
    data = _aiortc_packet().serialize(_ext_map(**ids))
    pt, marker, seq, ts, ssrc, hlen = rtp.read_header(data)
    assert (pt, marker, seq, ts, ssrc) == (111, True, 65535, 0xFFFFFF00, 0x12345678)
    assert data[hlen:] == b"\xfc" + bytes(40)
    assert rtp.audio_level(data, level_id) == (True, 42)
    assert rtp.audio_level(data, 7) is None
    parsed = RtpPacket.parse(data)
    assert parsed.extension_profile == 0xBEDE
    assert dict(parsed.extensions())[level_id] == bytes([0x80 | 42])
    assert bytes(parsed) == data


def test_two_byte_extensions_are_read() -> None:
    profile, body = rtp.pack_extensions([(1, b"\x05"), (20, b""), (200, bytes(20))])
    assert profile == 0x1000
    pkt = RtpPacket(111, 1, 2, 3, payload=b"x", extension_profile=profile, extension=body)
    data = bytes(pkt)
    assert rtp.audio_level(data, 1) == (False, 5)
    assert rtp.audio_level(data, 200) == (False, 0)
    assert rtp.audio_level(data, 9) is None
    with pytest.raises(PacketError):
        rtp.audio_level(data, 20)  # empty audio-level element
    # aiortc reads the same elements
    back = AiortcRtpPacket.parse(data, _ext_map(audio_level=1))
    assert back.extensions.audio_level == (False, 5)
    assert RtpPacket.parse(data).extensions() == ((1, b"\x05"), (20, b""), (200, bytes(20)))


def test_build_rtp_is_understood_by_aiortc() -> None:
    data = rtp.build_rtp(
        payload_type=111,
        seq=70000,
        timestamp=2**32 + 5,
        ssrc=99,
        payload=b"opus",
        marker=True,
        audio_level=(False, 127),
        audio_level_id=1,
    )
    back = AiortcRtpPacket.parse(data, _ext_map(audio_level=1))
    assert back.sequence_number == 70000 - 65536
    assert back.timestamp == 5
    assert back.marker == 1 and back.payload_type == 111 and back.ssrc == 99
    assert back.payload == b"opus"
    assert back.extensions.audio_level == (False, 127)
    assert rtp.audio_level(data, 1) == (False, 127)


def test_no_extension_means_no_level() -> None:
    data = rtp.build_rtp(payload_type=111, seq=1, timestamp=2, ssrc=3, payload=b"p")
    assert rtp.audio_level(data, 1) is None
    assert rtp.read_header(data)[5] == 12


def test_one_byte_id_15_stops_processing() -> None:
    body = bytes([0xF0, 0x10, 0x2A, 0])  # id 15 then id 1 (len 1)
    data = bytes(RtpPacket(111, 1, 2, 3, extension_profile=0xBEDE, extension=body))
    assert rtp.audio_level(data, 1) is None


def test_rewrite_header_in_place() -> None:
    data = _aiortc_packet().serialize(_ext_map(audio_level=1))
    buf = bytearray(data)
    rtp.rewrite_header(buf, payload_type=111, seq=65536 + 7, timestamp=-1, ssrc=0xCAFEBABE)
    back = AiortcRtpPacket.parse(bytes(buf), _ext_map(audio_level=1))
    assert back.marker == 1  # preserved
    assert (back.sequence_number, back.timestamp, back.ssrc) == (7, 0xFFFFFFFF, 0xCAFEBABE)
    assert back.extensions.audio_level == (True, 42)
    assert buf[12:] == data[12:]
    rtp.rewrite_header(buf, payload_type=96, seq=1, timestamp=2, ssrc=3, marker=False)
    assert rtp.read_header(buf)[:5] == (96, False, 1, 2, 3)
    rtp.rewrite_header(buf, payload_type=96, seq=1, timestamp=2, ssrc=3, marker=True)
    assert rtp.read_header(buf)[1] is True


def test_rewritten_returns_the_same_bytes_as_in_place_rewrite() -> None:
    data = _aiortc_packet().serialize(_ext_map(audio_level=1))
    for marker in (None, True, False):
        buf = bytearray(data)
        kw = {"payload_type": 100, "seq": 70000, "timestamp": 2**32 + 3, "ssrc": 77}
        rtp.rewrite_header(buf, marker=marker, **kw)
        out = rtp.rewritten(data, marker=marker, **kw)
        assert isinstance(out, bytes) and out == bytes(buf)


def test_audio_level_is_readable_on_srtp_packets() -> None:
    key = bytes(range(30))
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    data = rtp.build_rtp(
        payload_type=111,
        seq=1,
        timestamp=960,
        ssrc=5,
        payload=bytes(60),
        audio_level=(True, 30),
        audio_level_id=1,
    )
    protected = tx.protect(data)
    assert protected[:16] == data[:16]
    assert rtp.audio_level(protected, 1) == (True, 30)
    assert rtp.read_header(protected)[:5] == (111, False, 1, 960, 5)


def test_padding_and_csrc_round_trip() -> None:
    pkt = RtpPacket(
        0,
        1,
        2,
        3,
        payload=b"abc",
        csrc=(7, 8),
        padding_size=5,
        extension_profile=0x1234,
        extension=b"wxyz",
    )
    data = bytes(pkt)
    assert RtpPacket.parse(data) == pkt
    back = AiortcRtpPacket.parse(data)
    assert back.csrc == [7, 8] and back.payload == b"abc" and back.padding_size == 5
    assert pkt.extensions() == ()  # unknown profile: opaque


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes([0x40]) + bytes(11),  # version 1
        bytes([0x82]) + bytes(15),  # 2 CSRCs, only one present
        bytes([0x90]) + bytes(13),  # extension header truncated
        bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4),  # block overruns
        bytes([0xA0]) + bytes(11) + b"\x00",  # zero padding count
        bytes([0xA0]) + bytes(11) + b"\x05",  # padding longer than payload
    ],
)
def test_malformed_packets_raise_packet_error(data: bytes) -> None:
    with pytest.raises(PacketError):
        RtpPacket.parse(data)


def test_truncated_extension_elements_raise_packet_error() -> None:
    one = bytes([0x90]) + bytes(11) + b"\xbe\xde\x00\x01" + bytes([0x23, 0, 0, 0])
    with pytest.raises(PacketError):
        rtp.audio_level(one, 2)  # id 2 with 4 bytes in a 3-byte remainder
    two = bytes([0x90]) + bytes(11) + b"\x10\x00\x00\x01" + bytes([0x05, 0x09, 0, 0])
    with pytest.raises(PacketError):
        rtp.audio_level(two, 5)


_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=64),
    marker=st.booleans(),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension_profile=st.none() | st.integers(0, 0xFFFF),
    extension=st.binary(max_size=16).map(lambda b: b + bytes(-len(b) & 3)),
    padding_size=st.integers(0, 255),
)


@settings(max_examples=200, deadline=None)
@given(_packets)
def test_serialize_then_parse_round_trips(pkt: RtpPacket) -> None:
    if pkt.extension_profile is None:
        pkt = dataclasses.replace(pkt, extension=b"")
    assert RtpPacket.parse(bytes(pkt)) == pkt


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80), st.integers(1, 255))
def test_random_bytes_raise_only_packet_error(data: bytes, ext_id: int) -> None:
    for fn in (rtp.read_header, RtpPacket.parse, lambda d: rtp.audio_level(d, ext_id)):
        try:
            fn(data)
        except PacketError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.integers(0x80, 0xBF), st.binary(min_size=11, max_size=60), st.integers(1, 15))
def test_rtp_looking_bytes_raise_only_packet_error(b0: int, rest: bytes, ext_id: int) -> None:
    data = bytes([b0]) + rest
    at = 12 + 4 * (b0 & 0x0F)
    for profile in (b"\xbe\xde", b"\x10\x00"):
        d = data[:at] + profile + data[at + 2 :] if len(data) > at + 2 else data
        try:
            rtp.audio_level(d, ext_id)
            RtpPacket.parse(d).extensions()
        except PacketError:
            pass
