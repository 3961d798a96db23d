"""Placement of new participants on media workers, and channel ownership with epochs."""

from __future__ import annotations

import pytest

from voice_server.workers.ownership import Owner, Ownership
from voice_server.workers.placement import Placement


def test_a_new_participant_goes_to_the_least_loaded_worker_lowest_index_first() -> None:
    p = Placement(3)
    assert p.choose("ops") == 0
    p.placed(0, "ops")
    assert p.choose("hq") == 1
    p.placed(1, "hq")
    assert p.choose("lab") == 2


def test_a_worker_that_carries_the_channel_is_preferred_within_the_slack() -> None:
    p = Placement(2, slack=2)
    for _ in range(2):
        p.placed(0, "ops")
    assert p.choose("ops") == 0  # 2 more than worker 1: within the slack
    p.placed(0, "ops")
    assert p.choose("ops") == 1  # 3 more: the channel spans workers


def test_among_carriers_the_least_loaded_is_chosen() -> None:
    p = Placement(3)
    p.placed(0, "ops")
    p.placed(0, "hq")
    p.placed(2, "ops")
    assert p.choose("ops") == 2


def test_leaving_lowers_the_load_and_ends_carrying() -> None:
    p = Placement(2)
    p.placed(1, "ops")
    p.left(1, "ops")
    p.left(1, "ops")  # one too many: ignored
    assert p.load(1) == 0 and not p.carries(1, "ops")


def test_round_robin_spreads_one_channel_over_every_live_worker() -> None:
    p = Placement(3, mode="round-robin")
    chosen = []
    for _ in range(4):
        w = p.choose("ops")
        p.placed(w, "ops")
        chosen.append(w)
    assert chosen == [0, 1, 2, 0]
    p.down(1)
    assert [p.choose("ops") for _ in range(3)] == [2, 0, 2]


def test_a_dead_worker_gets_nobody_and_forgets_its_load() -> None:
    p = Placement(2)
    p.placed(0, "ops")
    p.down(1)
    assert p.choose("ops") == 0
    p.down(0)
    assert p.load(0) == 0
    with pytest.raises(LookupError):
        p.choose("ops")
    p.up(1)
    assert p.choose("ops") == 1


def test_a_bad_mode_or_count_is_refused() -> None:
    with pytest.raises(ValueError):
        Placement(0)
    with pytest.raises(ValueError):
        Placement(2, mode="random")  # type: ignore[arg-type]


def test_the_first_carrier_owns_a_channel_and_later_carriers_do_not() -> None:
    o = Ownership()
    first = o.carry("ops", 1)
    assert first == Owner(1, 1)
    assert o.carry("ops", 0) == first
    assert o.carry("hq", 0) == Owner(0, 2)  # one counter: epochs only grow


def test_a_dead_owners_channels_are_re_owned_with_a_newer_epoch() -> None:
    o = Ownership()
    o.carry("ops", 1)
    o.carry("hq", 1)
    o.carry("lab", 0)
    changes = o.worker_died(1, {"ops": [1, 2, 0], "hq": [1]})
    assert changes == {"hq": None, "ops": Owner(0, 4)}
    assert o.owner("hq") is None and o.owner("lab") == Owner(0, 3)
    assert o.owned_by(0) == ["lab", "ops"]
    again = o.carry("hq", 2)  # a later carrier owns it afresh, newer than any before
    assert again.epoch > 4


def test_a_released_channel_has_no_owner() -> None:
    o = Ownership()
    o.carry("ops", 0)
    o.release("ops")
    assert o.owner("ops") is None


def test_a_worker_not_answering_gets_no_new_participant_unless_it_is_the_only_one() -> None:
    p = Placement(2)
    assert p.choose("ops", avoid=frozenset({0})) == 1
    p.down(1)
    assert p.choose("ops", avoid=frozenset({0})) == 0  # better a slow worker than none
