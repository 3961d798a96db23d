"""The pure parts of ``bench cluster``: the clients' failover rule, their silence rule, and the
statistics over a node's clients (README "Benchmarks", ``voice_server/bench/cluster.py``)."""

from __future__ import annotations

import pytest

from voice_server.bench.cluster import (
    BACKOFF,
    ClientRule,
    Lost,
    Silence,
    distribution,
    time_to_fraction,
)
from voice_server.sim.rx_stats import StreamStats


def _rule(nodes: int = 4) -> ClientRule:
    return ClientRule(nodes=nodes, rand=lambda lo, hi: 1.0)  # no jitter


def test_a_dropped_socket_tries_the_same_node_first_then_the_next() -> None:
    rule = _rule()
    assert rule.next_try(2, Lost.DROPPED, 0) == (2, BACKOFF[0])
    # that try was refused (the node is dead): the next node, after the next step
    assert rule.next_try(2, Lost.REFUSED, 1) == (3, BACKOFF[1])


@pytest.mark.parametrize("why", [Lost.SILENT, Lost.REFUSED, Lost.FAILED, Lost.UNAVAILABLE])
def test_anything_but_a_drop_moves_on_round_the_ring(why: Lost) -> None:
    rule = _rule()
    assert rule.next_try(3, why, 0) == (0, BACKOFF[0])  # d -> a
    assert rule.next_try(0, why, 0)[0] == 1


def test_the_back_off_grows_then_stays_and_is_jittered_by_at_most_a_fifth() -> None:
    rule = _rule()
    assert [rule.next_try(0, Lost.FAILED, n)[1] for n in range(6)] == [
        0.25, 0.5, 1.0, 2.0, 2.0, 2.0,
    ]  # fmt: skip
    low = ClientRule(nodes=3, rand=lambda lo, hi: lo).next_try(0, Lost.FAILED, 0)[1]
    high = ClientRule(nodes=3, rand=lambda lo, hi: hi).next_try(0, Lost.FAILED, 0)[1]
    assert low == pytest.approx(0.2) and high == pytest.approx(0.3)


def test_silence_pings_every_two_seconds_and_gives_up_after_five() -> None:
    live = Silence.opened(0.0)
    assert live.beat(1.0) == (False, False)
    assert live.beat(2.0) == (True, False)  # the first ping
    assert live.beat(3.9) == (False, False)
    assert live.beat(4.0) == (True, False)  # unanswered: a ping again
    assert live.beat(4.99) == (False, False)
    assert live.beat(5.0) == (False, True)  # 5 s since the last message, a ping 3 s unanswered


def test_any_message_keeps_the_link_alive() -> None:
    live = Silence.opened(0.0)
    for t in (2.0, 4.0, 6.0, 8.0):
        assert live.beat(t) == (True, False)
        live.heard(t + 0.01)  # the pong
    assert live.beat(12.0) == (True, False)  # a ping, never dead


def test_a_late_watch_pings_before_it_calls_the_link_dead() -> None:
    live = Silence.opened(0.0)
    assert live.beat(9.0) == (True, False)  # 9 s silent, but never asked: ping first
    assert live.beat(11.0) == (True, False)  # its next ping, not yet dead
    assert live.beat(12.0) == (False, True)  # that ping unanswered 3 s


def test_time_to_95_percent_is_the_nearest_rank_and_none_when_too_few_heard() -> None:
    times: list[float | None] = [float(i) for i in range(1, 21)]  # 1 … 20 s
    assert time_to_fraction(times) == 19.0  # 19 of 20 = 95 %
    assert time_to_fraction([*times[:19], None]) == 19.0
    assert time_to_fraction([*times[:18], None, None]) is None
    assert time_to_fraction([]) is None
    assert time_to_fraction([0.5]) == 0.5


def test_distribution_counts_those_that_never_heard() -> None:
    d = distribution([3.0, 1.0, None, 2.0])
    assert d == {"count": 4, "never": 1, "p50": 2.0, "p95": 3.0, "max": 3.0}
    assert distribution([]) == {"count": 0, "never": 0, "p50": None, "p95": None, "max": None}


def test_stream_stats_keep_the_longest_gap_between_arrivals() -> None:
    s = StreamStats(1)
    for seq, at_ms in enumerate((0, 20, 40, 150, 170)):
        s.on_packet(seq, seq * 960, at_ms * 1_000_000)
    assert s.max_gap_ns == 110_000_000
    s.max_gap_ns = 0  # a new window
    s.on_packet(5, 5 * 960, 190_000_000)
    assert s.max_gap_ns == 20_000_000
