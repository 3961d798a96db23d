"""Reception statistics for the receiver reports sent to talkers (RFC 3550 A.1, A.3, A.8)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from voice_server.media.reception import Reception, folded_fraction
from voice_server.media.rtcp import ReportBlock, ntp_from_unix, ntp_short

SSRC = 0x1234_5678


def feed(rec: Reception, seqs: list[int], *, start: float = 100.0, step: float = 0.02) -> None:
    for i, seq in enumerate(seqs):
        rec.packet(seq & 0xFFFF, (i * 960) & 0xFFFFFFFF, SSRC, start + i * step)


def test_nothing_received_gives_no_block() -> None:
    assert Reception().block(1.0) is None


def test_no_loss_reports_zero_and_the_highest_sequence() -> None:
    rec = Reception()
    feed(rec, list(range(1000, 1050)))
    block = rec.block(200.0)
    assert block is not None
    assert (block.ssrc, block.fraction_lost, block.packets_lost) == (SSRC, 0, 0)
    assert block.highest_sequence == 1049
    assert block.jitter == 0  # constant transit time


def test_ten_percent_loss_is_reported_per_interval_and_cumulatively() -> None:
    rec = Reception()
    feed(rec, [s for s in range(100) if s % 10 != 5])  # 10 of 100 lost
    first = rec.block(10.0)
    assert first is not None
    assert first.packets_lost == 10
    assert first.fraction_lost == (10 << 8) // 100  # 25/256 ≈ 10 %
    feed(rec, list(range(100, 200)), start=200.0)  # the next interval loses nothing
    second = rec.block(20.0)
    assert second is not None
    assert second.fraction_lost == 0 and second.packets_lost == 10


def test_sequence_wrap_counts_cycles() -> None:
    rec = Reception()
    feed(rec, [65530 + i for i in range(12)])  # wraps to 0..5
    block = rec.block(1.0)
    assert block is not None
    assert block.highest_sequence == (1 << 16) + 5 and block.packets_lost == 0


def test_duplicates_and_late_packets_count_as_received() -> None:
    rec = Reception()
    feed(rec, [1, 2, 4, 3, 5, 5, 6])
    block = rec.block(1.0)
    assert block is not None
    assert block.packets_lost == -1  # a duplicate makes the cumulative count negative (RFC 3550)
    assert block.fraction_lost == 0


def test_a_sender_that_restarts_its_numbering_is_followed_after_two_packets() -> None:
    rec = Reception()
    feed(rec, list(range(10, 20)))
    rec.packet(40000, 0, SSRC, 1.0)  # one stray far jump: ignored
    rec.packet(40001, 960, SSRC, 1.02)  # two in a row: a restart
    rec.packet(40002, 1920, SSRC, 1.04)
    block = rec.block(2.0)
    assert block is not None
    assert block.highest_sequence == 40002 and block.packets_lost == 0


def test_a_new_ssrc_restarts_the_statistics() -> None:
    rec = Reception()
    feed(rec, [s for s in range(50) if s % 2])
    rec.packet(7, 0, SSRC + 1, 5.0)
    block = rec.block(6.0)
    assert block is not None
    assert block.ssrc == SSRC + 1 and block.packets_lost == 0 and block.highest_sequence == 7


def test_jitter_follows_the_arrival_spread() -> None:
    rec = Reception()
    for i in range(400):  # arrivals alternately 0 and 10 ms late: |D| = 480 units each time
        rec.packet(i, i * 960, SSRC, 100.0 + i * 0.02 + (0.01 if i % 2 else 0.0))
    block = rec.block(200.0)
    assert block is not None
    assert 470 <= block.jitter <= 480


def test_lsr_and_dlsr_let_the_talker_compute_its_round_trip() -> None:
    rec = Reception()
    feed(rec, list(range(10)))
    ntp = ntp_from_unix(1_700_000_000.25)
    rec.sender_report(ntp, 50.0)
    block = rec.block(50.5)
    assert block is not None
    assert block.lsr == ntp_short(ntp)
    assert abs(block.dlsr - 0.5 * 65536) <= 1


def test_the_worst_listener_raises_the_fraction_not_the_counts() -> None:
    rec = Reception()
    feed(rec, list(range(100)))
    block = rec.block(1.0, fold=64)
    assert block is not None
    assert block.fraction_lost == 64 and block.packets_lost == 0
    assert folded_fraction(10, [3, 40, 7]) == 40 and folded_fraction(10, []) == 10


def test_the_block_survives_the_wire() -> None:
    rec = Reception()
    feed(rec, [s for s in range(300) if s % 7])
    block = rec.block(9.0)
    assert block is not None
    assert ReportBlock.parse(bytes(block)) == block


@given(st.lists(st.booleans(), min_size=1, max_size=600), st.integers(0, 65535))
def test_loss_matches_brute_force(kept: list[bool], first: int) -> None:
    """Whatever is lost (except the first packet, which defines the base), the cumulative loss
    is the number of holes up to the highest received sequence number."""
    kept[0] = True
    seqs = [first + i for i, k in enumerate(kept) if k]
    rec = Reception()
    feed(rec, seqs)
    block = rec.block(1e6)
    assert block is not None
    last = max(i for i, k in enumerate(kept) if k)
    assert block.packets_lost == sum(1 for k in kept[: last + 1] if not k)
    assert block.highest_sequence == first + last
