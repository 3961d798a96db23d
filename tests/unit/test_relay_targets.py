"""The relay's fan-out rule: once per other worker with listeners of the channel."""

from __future__ import annotations

from voice_server.media.relay_targets import RelayTargets


def test_a_packet_goes_once_to_each_other_worker_with_listeners() -> None:
    targets = RelayTargets(self_index=0)
    targets.set_listening(0, {"ops"})
    targets.set_listening(1, {"ops", "hq"})
    targets.set_listening(2, {"hq"})
    targets.set_listening(3, {"ops"})
    assert targets.targets("ops") == (1, 3)  # never back to itself, never to worker 2
    assert targets.targets("hq") == (1, 2)
    assert targets.targets("none") == ()


def test_twenty_listeners_on_one_worker_are_still_one_copy() -> None:
    targets = RelayTargets(self_index=1)
    # a worker reports channels, not listeners: however many it has, it is one target
    assert targets.set_listening(0, ["ops"] * 20)
    assert targets.targets("ops") == (0,)


def test_a_report_that_changes_nothing_rebuilds_nothing() -> None:
    targets = RelayTargets(self_index=0)
    assert targets.set_listening(1, {"ops"})
    assert not targets.set_listening(1, ["ops"])
    assert targets.set_listening(1, ())
    assert targets.targets("ops") == ()


def test_a_dead_worker_is_sent_nothing() -> None:
    targets = RelayTargets(self_index=0)
    targets.set_listening(1, {"ops"})
    targets.set_listening(2, {"ops"})
    targets.remove_worker(1)
    assert targets.targets("ops") == (2,)
