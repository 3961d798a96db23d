"""With several media workers, a channel's owner mirrors what its router forwards; another
worker's router sends a mirrored packet to its own listeners as it is."""

from __future__ import annotations

from tests.unit.test_media_preemption import LOUD, SLOT_SSRC, World
from tests.unit.test_media_router import FakeTransport
from voice_server.media.route import Route
from voice_server.media.rtp import build_rtp


def _mirrors(w: World) -> list[tuple[str, str, int, bytes, int]]:
    out: list[tuple[str, str, int, bytes, int]] = []
    w.router.mirror_out = lambda *args: out.append(args)
    return out


def test_the_owner_mirrors_each_forwarded_packet_once_with_its_slot() -> None:
    w = World({"a": 1})
    mirrored = _mirrors(w)
    w.run(10, a=LOUD)
    forwarded = [d for d, addr in w.sent if addr[1] == 6000]
    assert len(mirrored) == len(forwarded) > 0
    assert {(m[0], m[1], m[2]) for m in mirrored} == {("ops", "a", 1)}
    assert [b"P" + m[3] for m in mirrored] == forwarded  # as forwarded ("P": the fake protect)


def test_direct_talk_is_never_mirrored() -> None:
    w = World({"a": 1})
    mirrored = _mirrors(w)
    direct = Route(("ops",), ("ops",), only=frozenset({"lis"}))
    w.members["a"] = w.router.place(w.members["a"].transport, direct, hear=True)  # type: ignore[union-attr]
    w.router.refresh_listeners()
    w.run(10, a=LOUD)
    assert w.heard() and mirrored == []


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
