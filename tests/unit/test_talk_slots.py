"""SlotTable: lowest free slot, sticky holders, busy, no-op releases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voice_server.talk.slots import SlotTable


def test_talkers_get_the_lowest_free_slot_in_order() -> None:
    table: SlotTable[str] = SlotTable(3)
    assert [table.acquire(t) for t in ("a", "b", "c")] == [1, 2, 3]


def test_a_freed_low_slot_is_reused_first() -> None:
    table: SlotTable[str] = SlotTable(3)
    for t in ("a", "b", "c"):
        table.acquire(t)
    assert table.release("a") == 1
    assert table.release("b") == 2
    assert table.acquire("d") == 1
    assert table.acquire("e") == 2


def test_a_talker_holding_a_slot_keeps_it() -> None:
    table: SlotTable[str] = SlotTable(2)
    assert table.acquire("b") == 1
    assert table.acquire("a") == 2
    assert table.acquire("b") == 1
    assert len(table) == 2


def test_no_slot_when_all_are_held() -> None:
    table: SlotTable[str] = SlotTable(2)
    table.acquire("a")
    assert not table.busy
    table.acquire("b")
    assert table.busy
    assert table.free == 0
    assert table.acquire("c") is None
    assert "c" not in table
    # the holders are not disturbed
    assert table.holder(1) == "a"
    assert table.holder(2) == "b"


def test_releasing_a_non_holder_is_a_no_op() -> None:
    table: SlotTable[str] = SlotTable(2)
    table.acquire("a")
    assert table.release("zz") is None
    assert table.release("a") == 1
    assert table.release("a") is None
    assert len(table) == 0
    assert table.holder(1) is None


def test_who_holds_which_slot() -> None:
    table: SlotTable[int] = SlotTable(3)
    table.acquire(10)
    table.acquire(20)
    table.acquire(30)
    table.release(20)
    assert table.slot_of(30) == 3
    assert table.slot_of(20) is None
    assert list(table.held()) == [(1, 10), (3, 30)]
    with pytest.raises(IndexError):
        table.holder(0)
    with pytest.raises(IndexError):
        table.holder(4)


def test_a_table_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        SlotTable(0)


@given(
    st.integers(min_value=1, max_value=5),
    st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=7)), max_size=60),
)
def test_slots_stay_consistent_under_any_acquire_release_sequence(
    n: int, ops: list[tuple[bool, int]]
) -> None:
    table: SlotTable[int] = SlotTable(n)
    model: dict[int, int] = {}
    for acquire, talker in ops:
        if acquire:
            got = table.acquire(talker)
            if talker in model:
                assert got == model[talker]
            else:
                free = [s for s in range(1, n + 1) if s not in model.values()]
                assert got == (free[0] if free else None)
                if got is not None:
                    model[talker] = got
        else:
            assert table.release(talker) == model.pop(talker, None)
        assert dict((t, s) for s, t in table.held()) == model
        assert table.busy == (len(model) == n)
