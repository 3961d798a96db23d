"""Routes: who hears whom, as the plane builds it, against a brute-force reference."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media.plane import MediaPlane
from voice_server.media.route import Route, heard_via, resolve
from voice_server.media.rtp import build_rtp, read_header
from voice_server.media.sdp import IceCredentials
from voice_server.media.transport import TransportState
from voice_server.sim.answer import build_answer, parse_offer
from voice_server.talk.detector import TalkRules

CHANNELS = ("a", "b", "c", "d")
FINGERPRINT = ":".join(["AB"] * 32)


class FakeTx:
    def protect(self, data: bytes) -> bytes:
        return data


class Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, str, int]] = []

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("started", session_id, channel, slot))

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("stopped", session_id, channel, slot))

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self.log.append(("busy", session_id, channel, slots))


class Tap:
    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []

    def open(self, session_id: str, channel: str, preroll: Any, now_ms: int) -> object:
        self.opened.append((session_id, channel))
        return object()

    def packet(self, handle: object, plain: bytes) -> None:
        pass

    def close(self, handle: object) -> None:
        pass


def make_plane() -> tuple[MediaPlane, list[tuple[bytes, tuple[str, int]]]]:
    sent: list[tuple[bytes, tuple[str, int]]] = []
    plane = MediaPlane(
        host="127.0.0.1",
        port=5004,
        announce_ip="127.0.0.1",
        slots=2,
        events=Events(),
        rules=TalkRules(attack_ms=40, hangover_ms=600),
        tap=Tap(),
    )
    plane.endpoint.sendto = lambda data, addr: sent.append((data, addr))  # type: ignore[method-assign]
    return plane, sent


def connect(plane: MediaPlane, sid: str, port: int) -> None:
    """Pretend ICE, DTLS and the first answer went through."""
    tr = plane.links[sid].transport
    tr.state = TransportState.CONNECTED
    tr.answered = True
    tr.remote_ufrag = "them"
    tr.remote_fingerprint = FINGERPRINT
    tr.remote = ("127.0.0.1", port)
    tr.tx = FakeTx()  # type: ignore[assignment]
    plane._on_change(tr)


def built_audience(plane: MediaPlane, talker: str) -> list[tuple[str, str]]:
    """(listener, channel) for every copy the talker's packets would go out as: read from the
    fan-outs the routers built (the talker's own entry is skipped when sending)."""
    out = []
    for channel, router in plane.routers.items():
        member = router.members.get(talker)
        if member is None:
            continue
        for fanout in (member.fanout, member.fanout_plain):  # with RED, without
            for chunk in fanout._chunks:
                for key, _protect, _addr in chunk:
                    sid = key.session_id  # type: ignore[attr-defined]
                    if sid != talker:
                        out.append((sid, channel))
    return out


channel_sets = st.lists(st.sampled_from(CHANNELS), unique=True, max_size=3)


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Route]:
    n = draw(st.integers(1, 6))
    ids = [f"p{i}" for i in range(n)]
    routes = {}
    for sid in ids:
        only = draw(st.none() | st.frozensets(st.sampled_from(ids), max_size=2))
        routes[sid] = Route(
            tuple(draw(channel_sets)), tuple(draw(channel_sets)), only, draw(st.integers(0, 2))
        )
    return routes


def reference(routes: dict[str, Route], heard: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Brute force: every (talker, listener) pair, straight from the rule's words."""
    pairs = set()
    for t, tr in routes.items():
        for lid in routes:
            if lid == t or (tr.only is not None and lid not in tr.only):
                continue
            if any(c in heard[lid] for c in tr.sends):
                pairs.add((t, lid))
    return pairs


@settings(max_examples=150, deadline=None)
@given(worlds(), worlds())
def test_each_listener_hears_each_talker_once_exactly_when_the_routes_say_so(
    first: dict[str, Route], second: dict[str, Route]
) -> None:
    plane, _ = make_plane()
    for i, (sid, route) in enumerate(first.items()):
        plane.open(sid, route)
        connect(plane, sid, 6000 + i)
    heard = {sid: set(r.hears) for sid, r in first.items()}
    for talker in first:
        got = built_audience(plane, talker)
        assert len({lid for lid, _ in got}) == len(got)  # nobody gets a packet twice
        assert {(talker, lid) for lid, _ in got} == {
            p for p in reference(first, heard) if p[0] == talker
        }
        for lid, channel in got:  # on the slots of the talker's first channel the listener hears
            assert channel == heard_via(talker, first[talker], lid, first[lid])
    # the routes change mid-call: sends and hears with m-lines apply now, new hears wait for
    # the renegotiation answer
    routes = {sid: second.get(sid, r) for sid, r in first.items()}
    for sid, route in routes.items():
        plane.set_route(sid, route)
        heard[sid] = set(route.hears) & set(first[sid].hears)
    for talker in routes:
        got = built_audience(plane, talker)
        assert len({lid for lid, _ in got}) == len(got)
        expected = {p for p in reference(routes, heard) if p[0] == talker}
        assert {(talker, lid) for lid, _ in got} == expected
    assert set(plane.routers) <= {c for r in routes.values() for c in r.channels}


def test_resolve_is_the_rule_for_every_pair() -> None:
    routes = {
        "sup": Route(("a",), ("a", "b", "c")),
        "ann": Route(("a", "b"), ()),
        "dm": Route(("b",), ("b",), only=frozenset({"sup"})),
        "x": Route.channel("b"),
    }
    got = resolve(routes)
    assert got["ann"] == {"sup": "a", "dm": "b", "x": "b"}  # sup once, on a's slots
    assert got["dm"] == {"sup": "b"}  # direct talk: only sup
    assert got["sup"] == {}  # ann hears nothing, x hears only b


def test_a_route_names_each_channel_once() -> None:
    with pytest.raises(ValueError):
        Route(("a", "a"), ())


def _answer(offer: str, ufrag: str = "them") -> str:
    return build_answer(
        parse_offer(offer),
        credentials=IceCredentials(ufrag, "p" * 24),
        fingerprint=FINGERPRINT,
        ssrc=42,
    )


def test_hearing_a_new_channel_renegotiates_and_a_stale_answer_is_ignored() -> None:
    plane, _ = make_plane()
    first = plane.open("sup", Route.channel("a"))
    assert len(parse_offer(first).mids) == 3
    connect(plane, "sup", 7000)
    plane.open("b1", Route.channel("b"))
    connect(plane, "b1", 7001)
    one = plane.set_route("sup", Route(("a",), ("a", "b")))
    assert one is not None and len(parse_offer(one.sdp).mids) == 5
    assert "sup" not in plane.routers["b"].consumers  # not before the answer
    two = plane.set_route("sup", Route(("a",), ("a", "b", "c")))
    assert two is not None and two.revision == one.revision + 1
    # the answer to the superseded offer: ignored, counted, nothing changes
    assert plane.answer("sup", _answer(one.sdp), one.revision) is None
    assert plane.counters.renegotiations_ignored == 1
    # an answer with the wrong number of m-lines, or another ICE ufrag: ignored too
    plane.answer("sup", _answer(one.sdp), two.revision)
    plane.answer("sup", _answer(two.sdp, ufrag="other"), two.revision)
    assert plane.counters.renegotiations_ignored == 3
    assert "sup" not in plane.routers["b"].consumers
    assert plane.answer("sup", _answer(two.sdp), two.revision) is None
    assert plane.counters.renegotiations == 1
    assert "sup" in plane.routers["b"].consumers and "sup" in plane.routers["c"].consumers
    assert [lid for lid, _ in built_audience(plane, "b1")] == ["sup"]
    # dropping a channel needs no renegotiation; hearing it again reuses its m-lines
    assert plane.set_route("sup", Route.channel("a")) is None
    assert built_audience(plane, "b1") == []
    assert plane.set_route("sup", Route(("a",), ("a", "b"))) is None
    assert [lid for lid, _ in built_audience(plane, "b1")] == ["sup"]


def test_a_server_side_source_is_heard_in_its_channels_with_slots_events_and_the_tap() -> None:
    plane, sent = make_plane()
    for i, (sid, channel) in enumerate([("x", "a"), ("y", "b"), ("z", "c")]):
        plane.open(sid, Route.channel(channel))
        connect(plane, sid, 8000 + i)
    source = plane.attach_source("announce", Route(("a", "b"), ()))
    for k in range(10):
        plain = source.send(b"opus%d" % k, level=20, now_ns=(1000 + 20 * k) * 1_000_000)
        assert read_header(plain)[4] == source.ssrc
    ports = {addr[1] for _, addr in sent}
    assert ports == {8000, 8001}  # a and b, not c
    ssrcs = {read_header(data)[4] for data, _ in sent}
    assert ssrcs == {plane.routers["a"].slot_ssrcs[0], plane.routers["b"].slot_ssrcs[0]}
    events = plane.events.log  # type: ignore[attr-defined]
    assert ("started", "announce", "a", 1) in events and ("started", "announce", "b", 1) in events
    assert ("announce", "a") in plane.tap.opened  # type: ignore[union-attr]
    # tapped once, in its first channel: the call log's rows for the others come from it
    assert ("announce", "b") not in plane.tap.opened  # type: ignore[union-attr]
    plane.detach_source("announce")
    assert ("stopped", "announce", "a", 1) in events
    assert plane.routers["a"].members.keys() == {"x"}


def test_closing_the_plane_cascades_through_its_routers() -> None:
    plane, _ = make_plane()
    plane.open("x", Route.channel("a"))
    connect(plane, "x", 9000)
    tr = plane.links["x"].transport
    plane.close("x")
    assert plane.routers == {} and tr.sink is None and tr.state is TransportState.CLOSED


def test_a_transport_is_bound_to_its_members() -> None:
    plane, sent = make_plane()
    plane.open("x", Route(("a", "b"), ("a",)))
    plane.open("y", Route.channel("b"))
    connect(plane, "x", 9100)
    connect(plane, "y", 9101)
    sink = plane.links["x"].transport.sink
    assert sink is not None
    for k in range(5):
        sink(build_rtp(payload_type=111, seq=k, timestamp=960 * k, ssrc=5, payload=b"o",
                       audio_level=(True, 10)), 1_000_000 * 20 * k)  # fmt: skip
    assert {addr[1] for _, addr in sent} == {9101}
