"""The headset client's heartbeat rule (voice_client.liveness), on a made-up clock."""

from __future__ import annotations

from voice_client.liveness import PING_INTERVAL, SILENCE_LIMIT, Liveness


def run(
    live: Liveness,
    start: float,
    until: float,
    heard_at: tuple[float, ...] = (),
    *,
    joined: bool = True,
) -> list[tuple[float, str]]:
    """Wake the heartbeat from ``start`` whenever it asks, as the runner does, with messages
    from the server arriving at ``heard_at`` (each handled at once): what it did and when."""
    done: list[tuple[float, str]] = []
    now = start
    while now <= until:
        for t in heard_at:
            if live.last_heard < t <= now:
                live.heard(t)
                live.handled(t)
        beat = live.beat(now, joined=joined)
        if beat.dead:
            done.append((round(now, 6), "dead"))
            return done
        if beat.ping:
            done.append((round(now, 6), "ping"))
        assert beat.wake_at > now  # never a busy loop
        now = min([beat.wake_at, *(t for t in heard_at if t > now)])
    return done


def test_the_figures_are_a_ping_every_2_s_and_dead_after_5_s() -> None:
    assert (PING_INTERVAL, SILENCE_LIMIT) == (2.0, 5.0)


def test_a_silent_server_is_dead_5_s_after_its_last_message() -> None:
    live = Liveness.opened(100.0)
    live.heard(100.3)  # joined
    live.handled(100.3)
    assert run(live, 100.3, 200.0) == [(102.0, "ping"), (104.0, "ping"), (105.3, "dead")]


def test_any_message_counts_as_life() -> None:
    live = Liveness.opened(0.0)
    done = run(live, 0.0, 60.0, heard_at=(1.0, 4.0, 8.5, 12.0))  # pongs, talk events, …
    assert done == [(t, "ping") for t in range(2, 17, 2)] + [(17.0, "dead")]  # 12 + 5
    assert live.silent_for(17.0) == 5.0


def test_the_next_wake_is_the_next_ping_or_the_deadline() -> None:
    live = Liveness.opened(0.0)
    assert live.beat(0.0, joined=True).wake_at == 2.0
    live.heard(3.5)
    live.handled(3.5)
    beat = live.beat(4.0, joined=True)
    assert beat.ping and beat.wake_at == 6.0
    assert live.beat(6.0, joined=True).wake_at == 8.0
    assert live.beat(8.0, joined=True).wake_at == 8.5  # 3.5 + 5: the deadline comes first


def test_a_late_watch_pings_before_it_calls_the_link_dead() -> None:
    """A watch that wakes up long after the last message (a stalled loop, a suspended process,
    a throttled timer) has not asked the server anything for that long: it pings, and the link
    is dead only when that ping has had no answer for 3 s."""
    live = Liveness.opened(0.0)
    live.heard(0.1)
    live.handled(0.1)
    first = live.beat(60.0, joined=True)
    assert first.ping and not first.dead and first.wake_at == 62.0
    assert run(live, 62.0, 120.0) == [(62.0, "ping"), (63.0, "dead")]
    alive = Liveness.opened(0.0)
    assert alive.beat(60.0, joined=True).ping
    # the answer counts; then silence again: dead at 60.02 + 5
    done = run(alive, 60.0, 70.0, heard_at=(60.02,))
    assert done == [(62.0, "ping"), (64.0, "ping"), (65.02, "dead")]


def test_time_spent_handling_a_message_is_not_silence() -> None:
    live = Liveness.opened(0.0)
    live.heard(1.0)  # an offer: answering it takes 9 s here
    for t in (2.0, 6.0, 9.9):
        beat = live.beat(t, joined=True)
        assert not beat.dead and live.silent_for(t) == 0.0
        assert beat.wake_at <= t + PING_INTERVAL  # pings go on meanwhile
    live.handled(10.0)
    assert run(live, 10.0, 60.0) == [(11.9, "ping"), (13.9, "ping"), (15.0, "dead")]


def test_before_joined_there_is_no_ping_and_no_silence_rule() -> None:
    live = Liveness.opened(0.0)
    assert run(live, 0.0, 30.0, joined=False) == []
    beat = live.beat(31.0, joined=True)  # joined, nothing heard since the socket opened
    assert beat.ping and not beat.dead
    assert live.beat(34.0, joined=True).dead
