"""The control socket's messages between the parent and a media worker."""

from __future__ import annotations

import pytest

from voice_server.media.route import Route
from voice_server.workers.control import (
    decode,
    encode,
    route_dict,
    route_of,
    tap_packet,
    tap_packets,
)


def test_a_command_round_trips_with_its_fields() -> None:
    msg = decode(encode("open", id=3, session="s1", route={"sends": ["ops"]}))
    assert msg == {"op": "open", "id": 3, "session": "s1", "route": {"sends": ["ops"]}}


def test_a_tap_packet_is_binary_and_keeps_its_bytes() -> None:
    record = tap_packet(0xFFFF_FFFE, b"\x90\x6f rtp")
    assert record[:1] == b"P"
    assert decode(record) == {"op": "tap_packet", "h": 0xFFFF_FFFE, "plain": b"\x90\x6f rtp"}


@pytest.mark.parametrize("record", [b"", b"X{}", b"J[1]", b'J{"no": "op"}', b"P\x00"])
def test_anything_else_is_refused(record: bytes) -> None:
    with pytest.raises(ValueError):
        decode(record)


@pytest.mark.parametrize(
    "route",
    [
        Route.channel("ops"),
        Route(("ops", "hq"), ("hq",), frozenset({"a", "b"}), priority=2, hold=True),
        Route((), ()),
    ],
)
def test_a_route_round_trips(route: Route) -> None:
    assert route_of(decode(encode("x", route=route_dict(route)))["route"]) == route


def test_tap_packets_travel_several_to_a_record_in_order() -> None:
    items = [(1, b"\x90\x6f a"), (0xFFFF_FFFF, b""), (2, bytes(1400))]
    assert decode(tap_packets(items)) == {"op": "tap_packets", "items": items}
    with pytest.raises(ValueError):
        decode(tap_packets(items)[:-1])  # cut short
