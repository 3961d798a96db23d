"""RTCP compound parsing and building; interoperability with aiortc's RTCP classes."""

from __future__ import annotations

import time

import pytest
from aiortc import rtp as artp
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media import rtcp
from voice_server.media.errors import PacketError
from voice_server.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcp,
)

BLOCK = ReportBlock(
    ssrc=0xAABBCCDD,
    fraction_lost=12,
    packets_lost=-3,
    highest_sequence=0x1FFFF,
    jitter=77,
    lsr=0x12345678,
    dlsr=65536,
)


def test_aiortc_compound_is_parsed() -> None:
    info = artp.RtcpReceiverInfo(
        ssrc=5, fraction_lost=1, packets_lost=-2, highest_sequence=70000, jitter=9, lsr=3, dlsr=4
    )
    parts = [
        artp.RtcpSrPacket(
            ssrc=1,
            sender_info=artp.RtcpSenderInfo(
                ntp_timestamp=rtcp.ntp_from_unix(1.7e9),
                rtp_timestamp=960,
                packet_count=10,
                octet_count=1000,
            ),
            reports=[info],
        ),
        artp.RtcpRrPacket(ssrc=2, reports=[info, info]),
        artp.RtcpSdesPacket(chunks=[artp.RtcpSourceInfo(ssrc=1, items=[(1, b"cname-x")])]),
        artp.RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[10, 12]),
        artp.RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2),
        artp.RtcpByePacket(sources=[1, 2]),
    ]
    data = b"".join(bytes(p) for p in parts)
    got = rtcp.parse_compound(data)
    assert [type(p) for p in got] == [
        SenderReport,
        ReceiverReport,
        SourceDescription,
        UnknownRtcp,
        UnknownRtcp,
        Bye,
    ]
    sr, rr, sdes, nack, pli, bye = got
    assert isinstance(sr, SenderReport)
    assert (sr.ssrc, sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (1, 960, 10, 1000)
    assert sr.unix_time == pytest.approx(1.7e9, abs=1e-6)
    expected_block = ReportBlock(5, 1, -2, 70000, 9, 3, 4)
    assert sr.reports == (expected_block,)
    assert isinstance(rr, ReceiverReport) and rr.reports == (expected_block, expected_block)
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "cname-x"
    assert isinstance(nack, UnknownRtcp) and (nack.packet_type, nack.count) == (205, 1)
    assert isinstance(pli, UnknownRtcp) and pli.packet_type == 206
    assert isinstance(bye, Bye) and bye.ssrcs == (1, 2) and bye.reason is None


def test_sender_report_is_understood_by_aiortc() -> None:
    now = time.time()
    data = rtcp.build_sender_report(
        ssrc=0x01020304,
        unix_time=now,
        rtp_timestamp=2**32 + 1,
        packet_count=500,
        octet_count=40000,
        cname="server",
        reports=[BLOCK],
    )
    sr, sdes = artp.RtcpPacket.parse(data)
    assert isinstance(sr, artp.RtcpSrPacket) and isinstance(sdes, artp.RtcpSdesPacket)
    assert sr.ssrc == 0x01020304
    assert sr.sender_info.rtp_timestamp == 1
    assert sr.sender_info.packet_count == 500 and sr.sender_info.octet_count == 40000
    assert rtcp.unix_from_ntp(sr.sender_info.ntp_timestamp) == pytest.approx(now, abs=1e-6)
    r = sr.reports[0]
    assert (r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence) == (
        0xAABBCCDD,
        12,
        -3,
        0x1FFFF,
    )
    assert (r.jitter, r.lsr, r.dlsr) == (77, 0x12345678, 65536)
    assert sdes.chunks[0].ssrc == 0x01020304 and sdes.chunks[0].items == [(1, b"server")]
    mine = rtcp.parse_compound(data)
    assert isinstance(mine[0], SenderReport) and mine[0].reports == (BLOCK,)
    assert isinstance(mine[1], SourceDescription) and mine[1].chunks[0].cname == "server"


def test_receiver_report_is_understood_by_aiortc() -> None:
    data = rtcp.build_receiver_report(ssrc=9, reports=[BLOCK], cname="sim-1")
    rr, sdes = artp.RtcpPacket.parse(data)
    assert isinstance(rr, artp.RtcpRrPacket) and rr.ssrc == 9 and len(rr.reports) == 1
    assert isinstance(sdes, artp.RtcpSdesPacket) and sdes.chunks[0].items == [(1, b"sim-1")]
    assert rtcp.build_receiver_report(ssrc=9) == bytes(ReceiverReport(9))


def test_ntp_conversion() -> None:
    assert rtcp.ntp_from_unix(0.0) == rtcp.NTP_EPOCH_OFFSET << 32
    assert rtcp.ntp_from_unix(0.5) == (rtcp.NTP_EPOCH_OFFSET << 32) | 0x80000000
    assert rtcp.ntp_short(0x1122334455667788) == 0x33445566


def test_packets_lost_is_clamped_to_24_bits() -> None:
    blk = ReportBlock(1, 0, -(2**30), 0, 0, 0, 0)
    assert ReportBlock.parse(bytes(blk)).packets_lost == -0x800000
    blk = ReportBlock(1, 0, 2**30, 0, 0, 0, 0)
    assert ReportBlock.parse(bytes(blk)).packets_lost == 0x7FFFFF


def test_bye_reason_and_padding() -> None:
    data = bytes(Bye((7,), "leaving"))
    assert rtcp.parse_compound(data) == [Bye((7,), "leaving")]
    # a padded RR (P bit, 4 padding bytes)
    rr = bytearray(bytes(ReceiverReport(3)))
    rr[0] |= 0x20
    rr[3] += 1
    rr += b"\x00\x00\x00\x04"
    assert rtcp.parse_compound(bytes(rr)) == [ReceiverReport(3)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc8\x00",
        b"\x40\xc9\x00\x01\x00\x00\x00\x01",  # version 1
        b"\x80\xc9\x00\x02\x00\x00\x00\x01",  # length overruns
        b"\x80\xc9\x00\x01\x00\x00\x00\x01\x00",  # trailing byte
        b"\x81\xc9\x00\x01\x00\x00\x00\x01",  # RC=1 but no block
        b"\x80\xc8\x00\x01\x00\x00\x00\x01",  # SR without sender info
        b"\xa0\xc9\x00\x01\x00\x00\x00\x00",  # zero padding count
        b"\xa0\xc9\x00\x01\x00\x00\x00\x09",  # padding longer than body
        b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x05ab\x00",  # SDES item overruns
        b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x02ab",  # SDES without terminator
        b"\x81\xca\x00\x03\x00\x00\x00\x01\x01\x01a\x00\x00\x00\x00\x07",  # SDES trailing
        b"\x82\xcb\x00\x01\x00\x00\x00\x01",  # BYE SC=2 with one SSRC
        b"\x81\xcb\x00\x02\x00\x00\x00\x01\x09abc",  # BYE reason overruns
    ],
)
def test_malformed_compounds_raise_packet_error(data: bytes) -> None:
    with pytest.raises(PacketError):
        rtcp.parse_compound(data)


_u32 = st.integers(0, 0xFFFFFFFF)
_blocks = st.lists(
    st.builds(
        ReportBlock,
        _u32,
        st.integers(0, 255),
        st.integers(-0x800000, 0x7FFFFF),
        _u32,
        _u32,
        _u32,
        _u32,
    ),
    max_size=3,
).map(tuple)
_packets = st.one_of(
    st.builds(SenderReport, _u32, st.integers(0, 2**64 - 1), _u32, _u32, _u32, _blocks),
    st.builds(ReceiverReport, _u32, _blocks),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                _u32,
                st.lists(st.tuples(st.integers(1, 8), st.binary(max_size=20)), max_size=3).map(
                    tuple
                ),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(_u32, max_size=3).map(tuple), st.none() | st.text(max_size=20)),
    st.builds(
        UnknownRtcp,
        st.sampled_from([204, 205, 206, 207]),
        st.integers(0, 31),
        st.binary(max_size=12).map(lambda b: b + bytes(-len(b) & 3)),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_packets, min_size=1, max_size=4))
def test_compounds_round_trip(packets: list[rtcp.RtcpPacket]) -> None:
    data = b"".join(bytes(p) for p in packets)
    assert rtcp.parse_compound(data) == packets


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_packet_error(data: bytes) -> None:
    try:
        rtcp.parse_compound(data)
    except PacketError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0x80, 0xBF), st.integers(200, 207), st.binary(max_size=40)),
        min_size=1,
        max_size=3,
    )
)
def test_well_framed_random_bodies_raise_only_packet_error(
    parts: list[tuple[int, int, bytes]],
) -> None:
    data = b"".join(
        bytes((b0, pt)) + ((len(body) + 3) // 4).to_bytes(2, "big") + body + bytes(-len(body) & 3)
        for b0, pt, body in parts
    )
    try:
        rtcp.parse_compound(data)
    except PacketError:
        pass
