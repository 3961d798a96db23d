"""One arbiter per channel: claims from any worker, the router's rules, epoch fencing."""

from __future__ import annotations

from voice_server.talk.arbiter import Decision, EpochFence, SlotArbiter

E = 7


def granted(talker: str, worker: int, slot: int, *, tentative: bool = False) -> Decision:
    return Decision("granted", talker, worker, E, slot, tentative)


def test_claims_get_the_lowest_free_slot_tentatively_and_the_rest_wait() -> None:
    a = SlotArbiter(2, epoch=E)
    assert a.claim("a", 0, 1) == [granted("a", 0, 1, tentative=True)]
    assert a.claim("b", 1, 1) == [granted("b", 1, 2, tentative=True)]
    assert a.claim("c", 1, 1) == [Decision("denied", "c", 1, E)]
    assert a.claim("a", 0, 1) == [granted("a", 0, 1, tentative=True)]  # idempotent
    assert a.confirm("a") == []
    assert a.claim("a", 0, 1) == [granted("a", 0, 1)]


def test_a_freed_slot_goes_to_the_highest_level_then_longest_waiting() -> None:
    a = SlotArbiter(1, epoch=E)
    a.claim("holder", 0, 3)  # level 3: never pre-empted
    a.claim("w1", 0, 1)
    a.claim("w2", 1, 2)
    a.claim("w3", 1, 2)
    assert a.release("holder") == [granted("w2", 1, 1)]
    assert a.release("w3") == []  # a waiter that stops talking just leaves the queue
    assert a.release("w2") == [granted("w1", 0, 1)]


def test_a_supervisor_on_another_worker_cuts_in_and_the_holder_is_preempted() -> None:
    a = SlotArbiter(3, epoch=E)
    for i, t in enumerate(("s1", "s2", "s3")):
        a.claim(t, 0, 1)
        a.confirm(t)
        assert a.table.slot_of(t) == i + 1
    # the most recently started level-1 holder is paused at once: its copies stop
    assert a.claim("sup", 1, 2) == [
        Decision("paused", "s3", 0, E, 3),
        granted("sup", 1, 3, tentative=True),
    ]
    assert a.confirm("sup") == [Decision("preempted", "s3", 0, E, 3, by="sup")]
    assert a.claim("s3", 0, 1) == [Decision("denied", "s3", 0, E)]  # it waits
    assert a.release("sup") == [granted("s3", 0, 3)]


def test_a_cut_in_that_was_a_click_gives_the_holder_its_slot_back() -> None:
    a = SlotArbiter(1, epoch=E)
    a.claim("staff", 0, 1)
    a.confirm("staff")
    a.claim("sup", 1, 2)
    assert a.release("sup") == [granted("staff", 0, 1)]
    assert a.confirm("sup") == []


def test_equal_or_level_3_holders_are_never_preempted() -> None:
    a = SlotArbiter(1, epoch=E)
    a.claim("emergency", 0, 3)
    assert a.claim("sup", 1, 2) == [Decision("denied", "sup", 1, E)]
    b = SlotArbiter(1, epoch=E)
    b.claim("sup1", 0, 2)
    assert b.claim("sup2", 1, 2) == [Decision("denied", "sup2", 1, E)]


def test_a_tentative_cut_in_pre_empted_in_turn_hands_its_victim_on() -> None:
    a = SlotArbiter(1, epoch=E)
    a.claim("staff", 0, 1)
    a.confirm("staff")
    a.claim("sup", 1, 2)  # tentative, paused staff
    out = a.claim("emerg", 2, 3)
    assert out == [
        Decision("paused", "sup", 1, E, 1),
        Decision("denied", "sup", 1, E),
        granted("emerg", 2, 1, tentative=True),
    ]
    assert a.confirm("emerg") == [Decision("preempted", "staff", 0, E, 1, by="emerg")]


def test_a_dead_workers_claims_are_dropped_and_its_slots_served_to_others() -> None:
    a = SlotArbiter(1, epoch=E)
    a.claim("gone", 1, 1)
    a.confirm("gone")
    a.claim("next", 0, 1)
    assert a.drop_worker(1) == [granted("next", 0, 1)]


def test_the_fence_drops_decisions_older_than_the_known_epoch() -> None:
    fence = EpochFence()
    assert fence.admit("ops", 3)
    assert fence.admit("ops", 4)  # re-owned: newer
    assert not fence.admit("ops", 3)  # the old owner's late word
    assert fence.admit("hq", 1)
    assert fence.stale == 1
