"""SlotStream and PreRoll: one SSRC per slot, continuous sequence numbers, plausible timestamps."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_server.media.slot_stream import (
    FRAME_SAMPLES,
    LATE_WINDOW,
    MAX_SEQ_GAP,
    PreRoll,
    SlotStream,
)


def rtp(seq: int, ts: int, ssrc: int = 0x1111, pt: int = 96, marker: bool = False) -> bytearray:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    return bytearray(header + b"\x01\x02\x03")


def fields(packet: bytearray) -> tuple[bool, int, int, int, int]:
    _, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    return bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc


def test_first_packet_uses_the_initial_values_and_a_marker() -> None:
    stream = SlotStream(0xCAFE, 111, first_seq=500, first_timestamp=9000)
    assert stream.advance("a", 7, 123456, 0)
    assert (stream.seq, stream.timestamp, stream.marker) == (500, 9000, True)


def test_rewrite_sets_slot_ssrc_payload_type_and_keeps_the_payload() -> None:
    stream = SlotStream(0xCAFE, 111, first_seq=1, first_timestamp=1000)
    packet = rtp(seq=42, ts=777, ssrc=0xDEAD, pt=96)
    assert stream.rewrite(packet, "a", 0)
    assert fields(packet) == (True, 111, 1, 1000, 0xCAFE)
    assert packet[0] == 0x80
    assert packet[12:] == b"\x01\x02\x03"


def test_one_talker_keeps_its_timestamp_deltas_including_dtx_gaps() -> None:
    stream = SlotStream(1, 111, first_seq=0, first_timestamp=0)
    out = []
    # 3 packets, a 400 ms DTX gap (the client's clock jumps 19200), 2 packets
    for seq, ts, t in [
        (10, 5000, 0),
        (11, 5960, 20),
        (12, 6920, 40),
        (13, 26120, 440),
        (14, 27080, 460),
    ]:
        assert stream.advance("a", seq, ts, t)
        out.append((stream.seq, stream.timestamp, stream.marker))
    assert [s for s, _, _ in out] == [0, 1, 2, 3, 4]
    assert [ts for _, ts, _ in out] == [0, 960, 1920, 21120, 22080]
    assert [m for _, _, m in out] == [True, False, False, False, False]


def test_talker_switch_continues_seq_and_advances_timestamp_by_wall_clock() -> None:
    stream = SlotStream(1, 111, first_seq=100, first_timestamp=0)
    stream.advance("a", 1, 0, 1000)
    stream.advance("a", 2, 960, 1020)
    # talker b starts 500 ms after a's last packet, with a totally different clock
    assert stream.advance("b", 40000, 3_000_000_000, 1520)
    assert (stream.seq, stream.timestamp, stream.marker) == (102, 960 + 500 * 48, True)
    assert stream.advance("b", 40001, 3_000_000_960, 1540)
    assert (stream.seq, stream.timestamp, stream.marker) == (103, 960 + 500 * 48 + 960, False)


def test_switch_advances_at_least_one_frame() -> None:
    stream = SlotStream(1, 111)
    stream.advance("a", 1, 0, 1000)
    stream.advance("b", 1, 0, 1005)  # 5 ms later: still one whole frame
    assert stream.timestamp == FRAME_SAMPLES
    stream.advance("c", 1, 0, 900)  # arrival older than the last one (pre-roll): one frame
    assert stream.timestamp == 2 * FRAME_SAMPLES


def test_two_talkers_alternating_produce_one_continuous_stream() -> None:
    stream = SlotStream(1, 111, first_seq=0, first_timestamp=0)
    t = 0
    seqs = {"a": 100, "b": 60000}
    tss = {"a": 0, "b": 4_000_000_000}
    out = []
    for turn in range(6):
        who = "ab"[turn % 2]
        for _ in range(3):
            assert stream.advance(who, seqs[who], tss[who], t)
            out.append((stream.seq, stream.timestamp, stream.marker))
            seqs[who] = (seqs[who] + 1) & 0xFFFF
            tss[who] = (tss[who] + 960) & 0xFFFFFFFF
            t += 20
        t += 300  # pause between turns
    assert [s for s, _, _ in out] == list(range(18))
    stamps = [ts for _, ts, _ in out]
    assert all(b > a for a, b in itertools.pairwise(stamps))
    assert [m for _, _, m in out] == [True, False, False] * 6
    # gap at each switch: 320 ms of wall clock since the previous talker's last packet
    assert stamps[3] - stamps[2] == 320 * 48


def test_release_makes_the_same_talkers_next_packet_a_switch() -> None:
    stream = SlotStream(1, 111)
    stream.advance("a", 1, 0, 0)
    stream.release()
    assert stream.talker is None
    stream.advance("a", 2, 960, 2000)  # e.g. a new burst with a reset client clock
    assert stream.marker
    assert stream.timestamp == 2000 * 48


def test_sequence_number_wraps_at_2_16() -> None:
    stream = SlotStream(1, 111, first_seq=0xFFFE)
    got = []
    for i in range(4):
        stream.advance("a", i, i * 960, i * 20)
        got.append(stream.seq)
    assert got == [0xFFFE, 0xFFFF, 0, 1]


def test_incoming_sequence_wrap_is_not_mistaken_for_a_late_packet() -> None:
    stream = SlotStream(1, 111)
    for i, seq in enumerate([0xFFFE, 0xFFFF, 0, 1]):
        assert stream.advance("a", seq, i * 960, i * 20)
    assert stream.stale_dropped == 0


def test_timestamp_wraps_at_2_32() -> None:
    stream = SlotStream(1, 111, first_timestamp=0xFFFFFFFF - 959)
    stream.advance("a", 1, 50, 0)
    stream.advance("a", 2, 50 + 960, 20)
    stream.advance("a", 3, 50 + 1920, 40)
    assert stream.timestamp == 960
    stream.advance("b", 1, 0xFFFFFF00, 540)  # switch across the wrap too
    assert stream.timestamp == 960 + 500 * 48


def test_incoming_timestamp_wrap_keeps_deltas() -> None:
    stream = SlotStream(1, 111, first_timestamp=1000)
    stream.advance("a", 1, 0xFFFFFC40, 0)  # 2**32 - 960
    stream.advance("a", 2, 0, 20)
    assert stream.timestamp == 1960


def test_a_late_packet_fills_its_hole_and_duplicates_are_dropped() -> None:
    stream = SlotStream(1, 111)
    assert stream.advance("a", 10, 0, 0)
    assert stream.advance("a", 12, 1920, 40)  # 11 not here yet: a hole the listener sees
    assert stream.seq == 2
    assert stream.advance("a", 11, 960, 45)  # late (uplink jitter): into the hole
    assert stream.late and (stream.late_seq, stream.late_timestamp) == (1, 960)
    assert (stream.seq, stream.timestamp) == (2, 1920)  # the head is still the newest
    assert not stream.advance("a", 11, 960, 45)  # the late one again: a duplicate
    assert not stream.advance("a", 12, 1920, 46)  # a duplicate of the newest
    assert stream.stale_dropped == 2 and stream.late_forwarded == 1
    packet = rtp(13, 2880)
    assert stream.rewrite(packet, "a", 60)
    assert fields(packet)[2] == 3 and not stream.late
    late = rtp(12, 1920)
    assert not stream.rewrite(late, "a", 61)
    assert late == rtp(12, 1920)  # untouched


def test_a_late_packet_is_rewritten_into_its_hole_without_a_marker() -> None:
    stream = SlotStream(0xABCD, 111, first_seq=100, first_timestamp=5000)
    for seq, at in ((7, 0), (9, 40), (10, 60)):
        assert stream.rewrite(rtp(seq, seq * 960), "a", at)
    late = rtp(8, 8 * 960, marker=True)
    assert stream.rewrite(late, "a", 70)
    # out = in + offset: seq 7 went out as 100, so 8 as 101; timestamps keep their offset
    assert fields(late) == (False, 111, 101, 5000 + 960, 0xABCD)
    after = rtp(11, 11 * 960)
    assert stream.rewrite(after, "a", 80)
    assert fields(after)[2:4] == (104, 5000 + 4 * 960)  # the head goes on from 10's number


def test_late_packets_are_dropped_beyond_the_window_or_before_a_renumbering() -> None:
    stream = SlotStream(1, 111)
    assert stream.advance("a", 1000, 0, 0)
    for seq in range(1001, 1000 + LATE_WINDOW + 5):
        assert stream.advance("a", seq, (seq - 1000) * 960, seq)
    assert not stream.advance("a", 1000 + 3, 3 * 960, 9999)  # forwarded already
    stream2 = SlotStream(1, 111)
    assert stream2.advance("a", 5, 0, 0)
    assert stream2.advance("a", 5 + LATE_WINDOW + 1, 0, 20)  # a jump: renumbered (> MAX_SEQ_GAP)
    assert not stream2.advance("a", 6, 960, 30)  # before the renumbering: dropped
    assert stream2.advance("b", 400, 0, 40)  # another talker: a switch
    assert stream2.advance("b", 402, 1920, 80)
    assert not stream2.advance("b", 399, 0, 90)  # before b's switch: dropped
    assert stream2.advance("b", 401, 960, 95)  # b's own hole: filled
    assert stream2.late_forwarded == 1
    stream2.release()
    assert stream2.advance("b", 410, 9600, 500)  # b again after a release: a switch
    assert not stream2.advance("b", 405, 4800, 510)  # from b's previous burst: dropped


def test_a_wrapped_sequence_number_is_late_or_new_by_its_distance() -> None:
    stream = SlotStream(1, 111)
    assert stream.advance("a", 0xFFFE, 0, 0)
    assert stream.advance("a", 1, 3 * 960, 60)  # over the wrap: 0xFFFF and 0 not here yet
    assert stream.advance("a", 0xFFFF, 960, 61)
    assert stream.late and stream.late_seq == (stream.seq - 2) & 0xFFFF
    assert stream.advance("a", 0, 2 * 960, 62)
    assert stream.late and stream.late_seq == (stream.seq - 1) & 0xFFFF


def test_talkers_own_marker_is_kept_within_a_burst() -> None:
    stream = SlotStream(1, 111)
    first = rtp(1, 0)
    stream.rewrite(first, "a", 0)
    second = rtp(2, 960, marker=True)
    stream.rewrite(second, "a", 20)
    third = rtp(3, 1920)
    stream.rewrite(third, "a", 40)
    assert [fields(p)[0] for p in (first, second, third)] == [True, True, False]


def test_rewrite_rejects_a_runt_packet() -> None:
    with pytest.raises(ValueError):
        SlotStream(1, 111).rewrite(bytearray(8), "a", 0)


@pytest.mark.parametrize(("ssrc", "pt"), [(-1, 111), (1 << 32, 111), (1, 128)])
def test_slot_stream_rejects_bad_ssrc_or_payload_type(ssrc: int, pt: int) -> None:
    with pytest.raises(ValueError):
        SlotStream(ssrc, pt)


def test_a_jump_beyond_the_largest_gap_goes_on_by_one() -> None:
    stream = SlotStream(1, 111)
    assert stream.advance("a", 100, 0, 0)
    assert stream.advance("a", 100 + MAX_SEQ_GAP, 960, 20)  # MAX_SEQ_GAP - 1 lost: kept
    assert stream.seq == MAX_SEQ_GAP
    assert stream.advance("a", 101 + 2 * MAX_SEQ_GAP, 1920, 40)  # a restarted sender
    assert stream.seq == MAX_SEQ_GAP + 1


_packet = st.tuples(
    st.integers(min_value=0, max_value=3),  # talker
    st.integers(min_value=1, max_value=3),  # incoming seq step
    st.integers(min_value=0, max_value=100_000),  # incoming timestamp step
    st.integers(min_value=0, max_value=5_000),  # arrival step (ms)
)


@given(
    st.integers(min_value=0, max_value=0xFFFF),
    st.integers(min_value=0, max_value=0xFFFFFFFF),
    st.lists(_packet, min_size=1, max_size=200),
)
def test_outgoing_seq_keeps_a_talkers_gaps_and_goes_on_by_one_at_switches(
    first_seq: int, first_ts: int, packets: list[tuple[int, int, int, int]]
) -> None:
    stream = SlotStream(7, 111, first_seq=first_seq, first_timestamp=first_ts)
    in_seq = [0x1234 * (t + 1) & 0xFFFF for t in range(4)]
    in_ts = [0x9ABCDEF0 * (t + 1) & 0xFFFFFFFF for t in range(4)]
    arrival = 0
    previous: tuple[int, int, int] | None = None
    last_talker: int | None = None
    for talker, seq_step, ts_step, arrival_step in packets:
        in_seq[talker] = (in_seq[talker] + seq_step) & 0xFFFF
        in_ts[talker] = (in_ts[talker] + ts_step) & 0xFFFFFFFF
        arrival += arrival_step
        assert stream.advance(talker, in_seq[talker], in_ts[talker], arrival)
        if previous is None:
            assert (stream.seq, stream.timestamp) == (first_seq, first_ts)
        else:
            prev_seq, prev_ts, prev_arrival = previous
            step = seq_step if talker == last_talker else 1
            assert stream.seq == (prev_seq + step) & 0xFFFF
            ts_delta = (stream.timestamp - prev_ts) & 0xFFFFFFFF
            if talker == last_talker:
                assert ts_delta == ts_step
            else:
                assert ts_delta == max(FRAME_SAMPLES, (arrival - prev_arrival) * 48)
        assert stream.marker == (talker != last_talker)
        previous = (stream.seq, stream.timestamp, arrival)
        last_talker = talker


def test_preroll_keeps_the_most_recent_packets_oldest_first() -> None:
    roll = PreRoll(3)
    for i in range(5):
        roll.push(bytes([i]), i * 20)
    assert len(roll) == 3
    assert roll.overwritten == 2
    assert roll.drain() == [(b"\x02", 40), (b"\x03", 60), (b"\x04", 80)]
    assert len(roll) == 0
    assert roll.drain() == []


def test_preroll_default_holds_100_ms_of_20_ms_packets() -> None:
    assert PreRoll().capacity == 5


def test_preroll_refills_after_a_drain_and_clear_does_not_count_drops() -> None:
    roll = PreRoll(2)
    roll.push(b"a", 0)
    assert roll.drain() == [(b"a", 0)]
    roll.push(b"b", 1)
    roll.push(b"c", 2)
    roll.push(b"d", 3)
    assert roll.overwritten == 1
    roll.clear()
    assert len(roll) == 0
    assert roll.overwritten == 1
    roll.push(b"e", 4)
    assert roll.drain() == [(b"e", 4)]


def test_preroll_then_live_packets_make_one_continuous_slot_stream() -> None:
    """Slot opens on the attack: the buffered packets go out first, then the live ones."""
    roll = PreRoll(5)
    for i in range(4):
        roll.push(bytes(rtp(100 + i, 960 * i)), 1000 + 20 * i)
    stream = SlotStream(9, 111, first_seq=0)
    sent = []
    for packet, arrival in roll.drain():
        buf = bytearray(packet)
        assert stream.rewrite(buf, "a", arrival)
        sent.append(fields(buf))
    live = rtp(104, 960 * 4)
    assert stream.rewrite(live, "a", 1080)
    sent.append(fields(live))
    assert [s[2] for s in sent] == [0, 1, 2, 3, 4]
    assert [s[3] - sent[0][3] for s in sent] == [0, 960, 1920, 2880, 3840]
    assert [s[0] for s in sent] == [True, False, False, False, False]


def test_preroll_needs_room() -> None:
    with pytest.raises(ValueError):
        PreRoll(0)
