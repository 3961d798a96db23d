"""RFC 2198 audio RED: parse, build, primary extraction and recovery (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_server.media.red import (
    MAX_BLOCKS,
    OPUS_PT,
    RED_PT,
    RedError,
    build_payload,
    parse_payload,
    primary_packet,
    recovered,
)
from voice_server.media.rtp import build_rtp, payload_of, read_header

frames = st.binary(min_size=0, max_size=200)


@st.composite
def redundancies(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    n = draw(st.integers(0, MAX_BLOCKS))
    offsets = sorted(draw(st.sets(st.integers(1, 16383), min_size=n, max_size=n)), reverse=True)
    return [(o, draw(frames)) for o in offsets]


def red_packet(primary: bytes, redundant: list[tuple[int, bytes]], *, seq: int = 100,
               ts: int = 96000, padding: int = 0) -> bytes:  # fmt: skip
    pkt = build_rtp(payload_type=RED_PT, seq=seq, timestamp=ts, ssrc=7,
                    payload=build_payload(primary, redundant), audio_level=(True, 30))  # fmt: skip
    if padding:
        pkt = bytes([pkt[0] | 0x20]) + pkt[1:] + bytes(padding - 1) + bytes([padding])
    return pkt


@given(frames, redundancies())
def test_build_then_parse_gives_the_blocks_back(
    primary: bytes, red: list[tuple[int, bytes]]
) -> None:
    payload = build_payload(primary, red)
    blocks, (p0, p1) = parse_payload(payload)
    assert payload[p0:p1] == primary
    assert [(o, payload[a:b]) for o, a, b in blocks] == red


@given(frames, redundancies(), st.integers(0, 3))
def test_primary_packet_is_plain_opus_behind_the_same_header(
    primary: bytes, red: list[tuple[int, bytes]], padding: int
) -> None:
    pkt = red_packet(primary, red, padding=padding)
    out = primary_packet(pkt)
    pt, _marker, seq, ts, ssrc, _ = read_header(out)
    assert (pt, seq, ts, ssrc) == (OPUS_PT, 100, 96000, 7)
    assert payload_of(out)[2] == primary
    assert out[: read_header(pkt)[5]][2:] == pkt[2 : read_header(pkt)[5]]


def test_recovered_frames_take_the_previous_sequence_numbers() -> None:
    pkt = red_packet(b"now", [(1920, b"two-ago"), (960, b"one-ago")], seq=5, ts=10_000)
    assert recovered(pkt, 0) == []
    one = recovered(pkt, 1)
    assert [payload_of(p) for p in one] == [(4, 10_000 - 960, b"one-ago")]
    two = recovered(pkt, 3)
    assert [payload_of(p) for p in two] == [(3, 10_000 - 1920, b"two-ago"),
                                             (4, 10_000 - 960, b"one-ago")]  # fmt: skip
    assert all(read_header(p)[0] == OPUS_PT and not read_header(p)[1] for p in two)


def test_sequence_wraps() -> None:
    pkt = red_packet(b"now", [(960, b"prev")], seq=0, ts=100)
    assert [payload_of(p)[:2] for p in recovered(pkt, 1)] == [(0xFFFF, (100 - 960) & 0xFFFFFFFF)]


def _head(pt: int, offset: int, length: int) -> bytes:
    return bytes([0x80 | pt]) + ((offset << 10) | length).to_bytes(3, "big")


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no header at all
        _head(OPUS_PT, 960, 3)[:3],  # truncated header
        _head(OPUS_PT, 960, 10) + bytes([OPUS_PT]) + b"abc",  # length past the end
        _head(OPUS_PT, 960, 1) + _head(OPUS_PT, 1920, 1) + bytes([OPUS_PT]) + b"ab",  # offsets up
        _head(OPUS_PT, 960, 1) + _head(OPUS_PT, 960, 1) + bytes([OPUS_PT]) + b"ab",  # equal
        _head(OPUS_PT, 0, 1) + bytes([OPUS_PT]) + b"a",  # a zero offset
        _head(0, 960, 1) + bytes([OPUS_PT]) + b"a",  # not Opus
        bytes([9]) + b"a",  # primary not Opus
        b"".join(_head(OPUS_PT, 1000 - i, 0) for i in range(MAX_BLOCKS + 1)) + bytes([OPUS_PT]),
    ],
)
def test_malformed_red_is_refused(payload: bytes) -> None:
    with pytest.raises(RedError):
        parse_payload(payload)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_red_error(payload: bytes) -> None:
    try:
        blocks, (p0, p1) = parse_payload(payload)
    except RedError:
        return
    assert p0 <= p1 == len(payload)
    assert all(a <= b <= p0 for _, a, b in blocks)


def test_build_refuses_what_red_cannot_carry() -> None:
    with pytest.raises(ValueError):
        build_payload(b"x", [(960, b"a"), (1920, b"b")])
    with pytest.raises(ValueError):
        build_payload(b"x", [(960, bytes(1024))])
