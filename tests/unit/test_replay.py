"""Presence (who had connected media where) and the replay list (pure)."""

from __future__ import annotations

from voice_server.calllog.model import Utterance
from voice_server.replay.listing import PendingBurst, merge
from voice_server.replay.presence import MAX_INTERVALS, PresenceLog

T0 = 1_780_000_000_000


def test_a_burst_is_heard_when_any_device_covers_90_percent_of_it_and_unknown_before_start() -> (
    None
):
    p = PresenceLog(started_ms=T0, period_ms=500)
    for t in range(T0, T0 + 10_000, 500):  # sato connected for 10 s, then away
        p.sample(t, [("ops", "sato")])
    p.sample(T0 + 10_000, [])
    for t in range(T0 + 20_000, T0 + 30_000, 500):  # back on another device
        p.sample(t, [("ops", "sato"), ("hq", "suzuki")])
    assert p.heard("ops", "sato", T0 + 1000, T0 + 5000) is True
    assert p.heard("ops", "sato", T0 + 12_000, T0 + 15_000) is False  # away
    assert p.heard("ops", "sato", T0 + 9000, T0 + 12_000) is False  # a third heard
    assert p.heard("ops", "sato", T0 + 22_000, T0 + 29_000) is True  # the open interval
    assert p.heard("hq", "sato", T0 + 22_000, T0 + 23_000) is False  # another channel
    assert p.heard("ops", "sato", T0 - 5000, T0 - 1000) is None  # before the log began
    assert p.connected("ops", "sato") and not p.connected("ops", "suzuki")


def test_presence_is_bounded_by_age_and_count() -> None:
    p = PresenceLog(started_ms=T0, keep_ms=60_000, period_ms=500)
    for i in range(2 * MAX_INTERVALS + 20):
        t = T0 + i * 20
        p.sample(t, [("ops", "sato")] if i % 2 == 0 else [])
    assert len(p.intervals("ops", "sato")) <= MAX_INTERVALS + 1 and p.dropped > 0
    p.sample(T0 + 10 * 60_000, [])  # ten minutes later everything has aged out
    assert p.intervals("ops", "sato") == []


def _row(uid: str, start: int, speaker: str = "suzuki", **kw: object) -> Utterance:
    return Utterance(uid, "ops", speaker, speaker, start, start + 1000, "text", **kw)  # type: ignore[arg-type]


def test_merge_lists_pending_once_newest_first_and_marks_what_was_missed() -> None:
    a = _row("1780000001000aaaaaa", T0 + 1000)
    mine = _row("1780000002000bbbbbb", T0 + 2000, speaker="sato")
    other_direct = _row("1780000003000cccccc", T0 + 3000, kind="direct", target_sub="tanaka")
    pending = [
        PendingBurst("1780000004000dddddd", "ops", "suzuki", "Suzuki", T0 + 4000, T0 + 5000),
        PendingBurst(a.id, "ops", "suzuki", "Suzuki", a.start_ms, a.end_ms),  # committed now
        PendingBurst("1770000000000eeeeee", "ops", "suzuki", "Suzuki", 1, 2),  # too old
    ]
    items = merge("sato", [a, mine, other_direct], pending, lambda s, e: s < T0 + 1500, since_ms=T0)
    assert [i.id for i in items] == [pending[0].id, mine.id, a.id]
    assert [i.missed for i in items] == [True, False, False]  # one's own talk is never missed
    assert items[0].text is None and items[2].text == "text"
    api = items[0].as_api("/clip", None)
    assert api["committed"] is False and api["clip_url"] == "/clip" and api["missed"] is True
