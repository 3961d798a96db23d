"""The headset client's heartbeat rule (voice_client.liveness), on a made-up clock."""

from __future__ import annotations

from voice_client.liveness import PING_INTERVAL, SILENCE_LIMIT, Liveness


def run(live: Liveness, until: float, *, joined: bool = True) -> list[tuple[float, str]]:
    """Wake the heartbeat whenever it asks, as the runner does; what it did and when."""
    done: list[tuple[float, str]] = []
    now = live.next_ping - PING_INTERVAL
    while now <= until:
        beat = live.beat(now, joined=joined)
        if beat.dead:
            done.append((now, "dead"))
            return done
        if beat.ping:
            done.append((now, "ping"))
        assert beat.wake_at > now  # never a busy loop
        now = beat.wake_at
    return done


def test_the_figures_are_a_ping_every_2_s_and_dead_after_5_s() -> None:
    assert (PING_INTERVAL, SILENCE_LIMIT) == (2.0, 5.0)


def test_a_silent_server_is_dead_5_s_after_its_last_message() -> None:
    live = Liveness.opened(100.0)
    live.heard(100.3)  # joined
    live.handled(100.3)
    assert run(live, 200.0) == [(102.0, "ping"), (104.0, "ping"), (105.3, "dead")]


def test_any_message_counts_as_life() -> None:
    live = Liveness.opened(0.0)
    for t in (1.0, 4.0, 8.5, 12.0):  # pongs, talk events, anything: never 5 s apart
        assert not live.beat(t, joined=True).dead
        live.heard(t)
        live.handled(t)
    assert not live.beat(16.9, joined=True).dead
    beat = live.beat(17.0, joined=True)
    assert beat.dead and live.silent_for(17.0) == 5.0


def test_the_next_wake_is_the_next_ping_or_the_deadline() -> None:
    live = Liveness.opened(0.0)
    assert live.beat(0.0, joined=True).wake_at == 2.0
    live.heard(3.5)
    live.handled(3.5)
    beat = live.beat(4.0, joined=True)
    assert beat.ping and beat.wake_at == 6.0
    assert live.beat(6.0, joined=True).wake_at == 8.0
    assert live.beat(8.0, joined=True).wake_at == 8.5  # 3.5 + 5: the deadline comes first


def test_time_spent_handling_a_message_is_not_silence() -> None:
    live = Liveness.opened(0.0)
    live.heard(1.0)  # an offer: answering it takes 9 s here
    for t in (2.0, 6.0, 9.9):
        beat = live.beat(t, joined=True)
        assert not beat.dead and live.silent_for(t) == 0.0
        assert beat.wake_at <= t + PING_INTERVAL  # pings go on meanwhile
    live.handled(10.0)
    assert not live.beat(14.9, joined=True).dead
    assert live.beat(15.0, joined=True).dead


def test_before_joined_there_is_no_ping_and_no_silence_rule() -> None:
    live = Liveness.opened(0.0)
    assert run(live, 30.0, joined=False) == []
    assert live.beat(31.0, joined=True).dead  # joined and nothing heard since the socket opened
