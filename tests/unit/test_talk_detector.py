"""TalkDetector: attack, hangover and silence-by-time on synthetic RFC 6464 level sequences."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from voice_server.talk.detector import TalkDetector, TalkEvent, TalkRules

LOUD = 30  # -30 dBov
QUIET = 127  # digital silence
FRAME = 20


def feed_levels(
    det: TalkDetector, levels: Sequence[int | None], start_ms: int = 0
) -> list[tuple[int, TalkEvent]]:
    """Feed one packet per 20 ms; return (time, event) for every non-NONE event."""
    events: list[tuple[int, TalkEvent]] = []
    for i, level in enumerate(levels):
        t = start_ms + i * FRAME
        ev = det.feed(t, level)
        if ev is not TalkEvent.NONE:
            events.append((t, ev))
    return events


def test_single_loud_click_does_not_start_a_burst() -> None:
    det = TalkDetector()
    assert feed_levels(det, [QUIET] * 5 + [LOUD] + [QUIET] * 20) == []
    assert not det.talking


def test_two_loud_packets_are_not_enough_for_the_default_attack() -> None:
    det = TalkDetector()
    assert feed_levels(det, [LOUD, LOUD, QUIET, QUIET, QUIET]) == []


def test_burst_starts_once_voiced_packets_span_the_attack_time() -> None:
    det = TalkDetector()
    events = feed_levels(det, [QUIET, LOUD, LOUD, LOUD, LOUD])
    assert events == [(60, TalkEvent.STARTED)]  # voiced at 20, 40, 60: 40 ms span
    assert det.talking
    assert det.started_at_ms == 20


def test_attack_tolerates_one_quiet_packet() -> None:
    det = TalkDetector()
    events = feed_levels(det, [LOUD, QUIET, LOUD, LOUD])
    assert events == [(40, TalkEvent.STARTED)]


def test_attack_restarts_after_two_quiet_packets() -> None:
    det = TalkDetector()
    events = feed_levels(det, [LOUD, QUIET, QUIET, LOUD, LOUD, LOUD])
    assert events == [(100, TalkEvent.STARTED)]  # run restarted at 60
    assert det.started_at_ms == 60


def test_attack_restarts_after_a_gap_without_packets() -> None:
    det = TalkDetector()
    assert det.feed(0, LOUD) is TalkEvent.NONE
    assert det.feed(200, LOUD) is TalkEvent.NONE  # DTX gap: new run
    assert det.feed(220, LOUD) is TalkEvent.NONE
    assert det.feed(240, LOUD) is TalkEvent.STARTED


def test_level_at_threshold_is_voiced_and_just_below_is_not() -> None:
    rules = TalkRules(threshold_dbov=50)
    det = TalkDetector(rules)
    assert feed_levels(det, [50, 50, 50]) == [(40, TalkEvent.STARTED)]
    det2 = TalkDetector(rules)
    assert feed_levels(det2, [51] * 10) == []


def test_zero_attack_starts_on_the_first_voiced_packet() -> None:
    det = TalkDetector(TalkRules(attack_ms=0))
    assert det.feed(0, LOUD) is TalkEvent.STARTED


def test_hangover_keeps_short_pauses_inside_one_burst() -> None:
    det = TalkDetector()
    # 300 ms talk, 400 ms pause (quiet packets), 300 ms talk, then silence
    levels = [LOUD] * 15 + [QUIET] * 20 + [LOUD] * 15 + [QUIET] * 40
    events = feed_levels(det, levels)
    assert [e for _, e in events] == [TalkEvent.STARTED, TalkEvent.STOPPED]
    last_voiced = (15 + 20 + 15 - 1) * FRAME
    stop_time = events[1][0]
    assert last_voiced + 600 <= stop_time < last_voiced + 600 + FRAME


def test_quiet_packets_end_the_burst_after_the_hangover() -> None:
    det = TalkDetector(TalkRules(hangover_ms=200))
    events = feed_levels(det, [LOUD] * 5 + [QUIET] * 20)
    assert events == [(40, TalkEvent.STARTED), (280, TalkEvent.STOPPED)]


def test_tick_ends_a_burst_when_packets_stop_arriving() -> None:
    det = TalkDetector()
    feed_levels(det, [LOUD] * 10)  # last packet at 180 ms
    assert det.tick(500) is TalkEvent.NONE
    assert det.tick(779) is TalkEvent.NONE
    assert det.tick(780) is TalkEvent.STOPPED
    assert not det.talking
    assert det.tick(2000) is TalkEvent.NONE  # reported once


def test_tick_does_nothing_while_idle() -> None:
    det = TalkDetector()
    assert det.tick(0) is TalkEvent.NONE
    det.feed(10, LOUD)
    assert det.tick(10_000) is TalkEvent.NONE


def test_a_new_burst_can_start_after_a_stop() -> None:
    det = TalkDetector(TalkRules(hangover_ms=100))
    first = feed_levels(det, [LOUD] * 3)
    assert det.tick(1000) is TalkEvent.STOPPED
    second = feed_levels(det, [LOUD] * 3, start_ms=2000)
    assert [e for _, e in first + second] == [TalkEvent.STARTED, TalkEvent.STARTED]
    assert det.started_at_ms == 2000


def test_packets_without_level_count_as_voiced_by_default() -> None:
    det = TalkDetector()
    assert feed_levels(det, [None, None, None]) == [(40, TalkEvent.STARTED)]


def test_packets_without_level_can_be_configured_as_quiet() -> None:
    det = TalkDetector(TalkRules(no_level_is_voiced=False))
    assert feed_levels(det, [None] * 10) == []


def test_time_going_backwards_is_clamped() -> None:
    det = TalkDetector(TalkRules(hangover_ms=100))
    feed_levels(det, [LOUD] * 3)  # talking, last voiced at 40
    assert det.tick(100) is TalkEvent.NONE
    assert det.feed(50, QUIET) is TalkEvent.NONE  # treated as 100
    assert det.tick(140) is TalkEvent.STOPPED


def test_reset_forgets_a_burst() -> None:
    det = TalkDetector()
    feed_levels(det, [LOUD] * 3)
    det.reset()
    assert not det.talking
    assert det.tick(10_000) is TalkEvent.NONE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold_dbov": -1},
        {"threshold_dbov": 128},
        {"attack_ms": -1},
        {"hangover_ms": 0},
        {"attack_gap_ms": 0},
    ],
)
def test_rules_reject_out_of_range_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        TalkRules(**kwargs)  # type: ignore[arg-type]


def test_hold_keeps_a_burst_going_past_the_hangover_until_voice_comes_back() -> None:
    det = TalkDetector()
    feed_levels(det, [LOUD] * 10)  # last voiced packet at 180 ms: the hangover ends at 780
    assert det.hold(500, 1500)  # the talker's network changed at 500: held until 2000
    assert det.tick(780) is TalkEvent.NONE
    assert det.tick(1999) is TalkEvent.NONE and det.talking
    assert det.tick(2000) is TalkEvent.STOPPED


def test_a_voiced_packet_ends_the_hold_and_the_normal_hangover_follows() -> None:
    det = TalkDetector()
    feed_levels(det, [LOUD] * 10)
    det.hold(500, 1500)
    assert det.feed(900, LOUD) is TalkEvent.NONE  # the voice is back on the new path
    assert det.tick(1499) is TalkEvent.NONE
    assert det.tick(1500) is TalkEvent.STOPPED  # 600 ms after it, not at 2000


def test_hold_does_nothing_without_a_burst_and_does_not_outlive_one() -> None:
    det = TalkDetector(TalkRules(hangover_ms=100))
    assert det.hold(0, 1500) is False
    feed_levels(det, [LOUD] * 3)
    det.hold(40, 1500)
    det.reset()
    feed_levels(det, [LOUD] * 3, start_ms=100)
    assert det.tick(240) is TalkEvent.STOPPED  # a new burst: no hold left over
