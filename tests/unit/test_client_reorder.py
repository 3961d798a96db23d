"""The headset client's reordering window (pure logic: fake packets, a fake clock)."""

from __future__ import annotations

import random

import pytest

from voice_client.reorder import MAX_HELD, STALE_MS, Out, ReorderWindow

F = 960  # 20 ms at 48 kHz


def push(w: ReorderWindow, seq: int, at: float, **kw: object) -> list[Out]:
    ts = kw.pop("ts", seq * F)
    return w.push(seq % 65536, int(ts) % (1 << 32), b"p%d" % seq, at, **kw)  # type: ignore[arg-type]


def played(outs: list[Out]) -> list[object]:
    """Each frame as its packet number, or 'fill'."""
    return [int(o.payload[1:]) if o.payload is not None else "fill" for o in outs]


def test_in_order_packets_go_out_at_once() -> None:
    w = ReorderWindow(depth_ms=60)
    for i in range(5):
        assert played(push(w, 100 + i, i * 20.0)) == [100 + i]
    assert w.stats.frames == 5 and w.stats.filled == 0 and w.held == 0


def test_a_reordered_packet_is_put_back_in_order() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1, 0)
    assert played(push(w, 3, 20)) == []  # waits for 2
    assert played(push(w, 4, 25)) == []
    assert played(push(w, 2, 40)) == [2, 3, 4]
    assert w.stats.reordered == 1 and w.stats.late == 0 and w.stats.filled == 0


def test_a_hole_is_filled_after_the_depth_then_the_packet_is_late() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1, 0)
    assert played(push(w, 3, 20)) == []
    assert played(push(w, 4, 40)) == []
    out = push(w, 5, 80)  # 3 has waited 60 ms: 2 is given up
    assert played(out) == ["fill", 3, 4, 5]
    fill = out[0]
    assert fill.timestamp == 2 * F and fill.samples == F and fill.fec == b"p3"
    assert played(push(w, 2, 90)) == []
    assert w.stats.filled == 1 and w.stats.fec == 1 and w.stats.late == 1


def test_no_packet_waits_longer_than_the_depth() -> None:
    rng = random.Random(7)
    w = ReorderWindow(depth_ms=60)
    arrivals = sorted((i * 20.0 + rng.uniform(0, 80), i) for i in range(500))
    sent_at: dict[int, float] = {}
    order: list[int] = []
    for at, seq in arrivals:
        sent_at[seq] = at
        for o in push(w, seq, at):
            if o.payload is not None:
                n = int(o.payload[1:])
                assert at - sent_at[n] <= 60 + 1e-6
                order.append(n)
    assert order == sorted(order)  # in sequence order, always
    # uniform 0-80 ms reorders by at most 60 ms: a 60 ms window puts nearly all back
    assert w.stats.reordered > 100
    assert w.stats.late + w.stats.filled < 10
    assert w.stats.frames + w.stats.late == 500


def test_sequence_numbers_wrap_around() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 65534, 0)
    assert played(push(w, 65536, 20)) == []  # 0, after 65535
    assert played(push(w, 65535, 30)) == [65535, 65536]
    assert played(push(w, 65537, 40)) == [65537]
    assert played(push(w, 65535, 50)) == []
    assert w.stats.duplicates == 1 and w.stats.resets == 0


def test_timestamps_wrap_around_in_a_fill() -> None:
    w = ReorderWindow(depth_ms=0)
    base = (1 << 32) - F
    w.push(10, base, b"p10", 0)
    out = w.push(12, (base + 2 * F) % (1 << 32), b"p12", 20)
    assert played(out) == ["fill", 12]
    assert out[0].timestamp == 0 and out[0].samples == F


def test_duplicates_are_dropped() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1, 0)
    push(w, 3, 10)
    assert push(w, 3, 15) == [] and push(w, 1, 16) == []
    assert w.stats.duplicates == 2


def test_a_new_ssrc_resets_and_what_waits_goes_out_first() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1, 0, ssrc=5)
    push(w, 3, 10, ssrc=5)
    assert played(push(w, 900, 20, ssrc=6)) == [3, 900]
    assert played(push(w, 901, 40, ssrc=6)) == [901]
    assert w.stats.resets == 1 and w.stats.filled == 0


def test_a_restarted_sequence_resets() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1000, 0)
    assert played(push(w, 40000, 20)) == [40000]  # far ahead
    assert played(push(w, 5, 40)) == [5]  # far behind: not "late" forever
    assert w.stats.resets == 2 and w.stats.late == 0


def test_a_long_hole_is_a_gap_not_filled() -> None:
    w = ReorderWindow(depth_ms=0)
    push(w, 1, 0)
    assert played(push(w, 20, 20)) == [20]  # 18 missing: more than MAX_FILL_FRAMES
    assert w.stats.filled == 0 and w.stats.skipped == 18


def test_a_gap_then_a_small_hole_waits_and_fills() -> None:
    w = ReorderWindow(depth_ms=0, max_fill=3)
    push(w, 1, 0)
    push(w, 2, 20)
    push(w, 7, 40)  # 4 missing, more than max_fill: a gap, 5 frames after 2
    assert w.stats.skipped == 4
    w.depth_ms = 60
    assert played(push(w, 10, 60)) == []  # a 2-frame hole still waits: no timestamp jump
    assert played(push(w, 8, 70)) == [8]
    assert played(push(w, 9, 75)) == [9, 10]


def test_the_pause_between_bursts_adds_no_delay_and_no_fill() -> None:
    """The slot stream numbers bursts on (+1) with the timestamp advanced by the pause."""
    w = ReorderWindow(depth_ms=60)
    for i in range(50):
        push(w, i, i * 20.0)
    pause = 48_000 * 3 // 2
    assert played(push(w, 50, 2500.0, ts=49 * F + pause)) == [50]
    assert w.stats.filled == 0 and w.held == 0


def test_a_hole_before_the_next_burst_waits_but_is_not_filled_with_the_pause() -> None:
    w = ReorderWindow(depth_ms=60)
    for i in range(10):
        push(w, i, i * 20.0)
    # the next burst after a 1 s pause (numbered on, its timestamp advanced by the pause); its
    # first packet (10) comes after its second: put back in order
    assert played(push(w, 11, 1500.0, ts=61 * F)) == []
    assert played(push(w, 10, 1510.0, ts=60 * F)) == [10, 11]
    # 12 never comes: after the depth the hole is filled (the timestamps add up)
    assert played(push(w, 13, 1520.0, ts=63 * F)) == []
    assert played(push(w, 14, 1580.0, ts=64 * F)) == ["fill", 13, 14]
    # the last packet of a burst is lost: the next burst's first waits the depth, no fill
    assert played(push(w, 16, 3000.0, ts=200 * F)) == []
    assert played(push(w, 17, 3060.0, ts=201 * F)) == [16, 17]
    assert w.stats.filled == 1 and w.stats.skipped == 1 and w.stats.late == 0


def test_what_waited_when_the_stream_paused_is_dropped_not_played_late() -> None:
    w = ReorderWindow(depth_ms=60)
    push(w, 1, 0)
    push(w, 3, 20)  # 2 lost, then the talker stops: 3 waits with nothing to give it up
    late = 20 + 60 + STALE_MS + 1
    assert played(push(w, 4, late, ts=200 * F)) == [4]
    assert w.stats.dropped == 1 and w.stats.filled == 0


def test_the_window_is_bounded() -> None:
    w = ReorderWindow(depth_ms=200)
    push(w, 0, 0)
    out: list[Out] = []
    for seq in range(2, 2 + MAX_HELD + 1):
        out += push(w, seq, 1.0)  # no time passes, 1 never comes
    assert w.held <= MAX_HELD
    assert played(out)[:2] == ["fill", 2]


def test_depth_zero_passes_through_and_fills_at_once() -> None:
    w = ReorderWindow(depth_ms=0)
    push(w, 1, 0)
    assert played(push(w, 3, 20)) == ["fill", 3]
    assert played(push(w, 2, 21)) == []
    assert w.stats.late == 1


@pytest.mark.parametrize("depth", [-1, 201])
def test_a_depth_out_of_range_is_refused(depth: float) -> None:
    with pytest.raises(ValueError, match="reordering depth"):
        ReorderWindow(depth_ms=depth)
