"""With several media workers, a channel's owner mirrors what its router forwards; another
worker's router sends a mirrored packet to its own listeners as it is."""

from __future__ import annotations

from typing import Any

from tests.unit.test_media_preemption import LOUD, SLOT_SSRC, World
from tests.unit.test_media_router import FakeTransport
from voice_server.media.route import Route
from voice_server.media.rtp import build_rtp


def _mirrors(w: World) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    w.router.mirror_out = lambda *args: out.append(args)
    return out


def test_the_owner_mirrors_each_forwarded_packet_once_with_its_slot() -> None:
    w = World({"a": 1})
    mirrored = _mirrors(w)
    w.run(10, a=LOUD)
    forwarded = [d for d, addr in w.sent if addr[1] == 6000]
    assert len(mirrored) == len(forwarded) > 0
    assert {(m[0], m[1], m[2], m[5]) for m in mirrored} == {("ops", "a", 1, None)}
    assert [b"P" + m[3] for m in mirrored] == forwarded  # as forwarded ("P": the fake protect)


def test_a_direct_talk_is_mirrored_with_its_route() -> None:
    w = World({"a": 1})
    mirrored = _mirrors(w)
    direct = Route(("ops",), ("ops",), only=frozenset({"lis"}))
    w.members["a"] = w.router.place(w.members["a"].transport, direct, hear=True)  # type: ignore[union-attr]
    w.router.refresh_listeners()
    w.run(10, a=LOUD)
    assert w.heard() and mirrored and {m[5] for m in mirrored} == {direct}


def test_a_mirrored_routed_talker_reaches_its_audience_here_only() -> None:
    w = World({"a": 1})
    _mirrors(w)
    w.router.add(FakeTransport("late", ("127.0.0.1", 7000)), Route((), ("ops",)))  # type: ignore[arg-type]
    w.router.refresh_listeners()
    packet = build_rtp(payload_type=111, seq=7, timestamp=960, ssrc=SLOT_SSRC, payload=b"opus:x")
    assert w.router.mirror("x", 1, packet, 0, (frozenset({"late"}), ()))  # a direct talk
    assert [addr[1] for _, addr in w.sent] == [7000]
    # an all-call's second channel: whoever hears its first ("hq") hears it there, not here
    hq_too = Route((), ("hq", "ops"))
    w.router.place(FakeTransport("late", ("127.0.0.1", 7000)), hq_too, hear=True)  # type: ignore[arg-type]
    w.router.refresh_listeners()
    w.sent.clear()
    assert w.router.mirror("x", 1, packet, 0, (None, ("hq",)))
    assert 7000 not in [addr[1] for _, addr in w.sent] and w.sent


def test_a_mirrored_packet_reaches_every_listener_but_its_talker_once() -> None:
    w = World({"a": 1})  # "a" is a listener here too (a phone hears its channel)
    _mirrors(w)  # a worker's router: the plane set its relay hook when it made it
    w.router.refresh_listeners()
    packet = build_rtp(payload_type=111, seq=7, timestamp=960, ssrc=SLOT_SSRC, payload=b"opus:x")
    assert w.router.mirror("a", 1, packet, 0)
    assert [addr[1] for _, addr in w.sent] == [6000]  # not back to "a" (port 5000)
    assert w.router.streams[0].forwarded == 1 and w.router.streams[0].seq == 7
    stranger = build_rtp(payload_type=111, seq=8, timestamp=960, ssrc=12345, payload=b"x")
    assert not w.router.mirror("b", 1, stranger, 0)  # not this channel's slot stream
    assert not w.router.mirror("b", 9, packet, 0)  # no such slot
    w.router.add(FakeTransport("late", ("127.0.0.1", 7000)), Route((), ("ops",)))  # type: ignore[arg-type]
    w.router.refresh_listeners()
    w.router.mirror("b", 1, packet, 0)
    assert sorted(addr[1] for _, addr in w.sent[1:]) == [5000, 6000, 7000]
