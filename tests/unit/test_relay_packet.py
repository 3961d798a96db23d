"""The relay packet between media workers: round trip, authentication, refusals counted."""

from __future__ import annotations

import pytest

from voice_server.media.relay_packet import (
    HEADER,
    TAG_BYTES,
    RelayError,
    RelayGate,
    RelayPacket,
    pack,
    parse,
)

KEY = bytes(range(32))
RTP = bytes([0x90, 111, 0, 7]) + bytes(8) + b"opus frame"


def _packet(**kw: object) -> RelayPacket:
    fields: dict[str, object] = dict(
        sender=1,
        incarnation=3,
        epoch=5,
        channel="ops",
        source="s-äöü",
        payload=RTP,
        priority=2,
        slot=1,
        send_ns=123_456_789_000,
        level_ext_id=1,
    )
    fields.update(kw)
    return RelayPacket(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("hold", [False, True])
def test_a_packet_round_trips_with_every_header_field(hold: bool) -> None:
    packet = _packet(hold=hold)
    data = pack(packet, KEY)
    assert len(data) == HEADER + 3 + len("s-äöü".encode()) + len(RTP) + TAG_BYTES
    assert parse(data, KEY) == packet


@pytest.mark.parametrize("flip", [0, 9, HEADER + 1, -TAG_BYTES - 1, -1])
def test_any_changed_byte_fails_authentication(flip: int) -> None:
    data = bytearray(pack(_packet(), KEY))
    data[flip] ^= 0x01
    with pytest.raises(RelayError) as err:
        parse(bytes(data), KEY)
    assert err.value.reason == "bad_auth"


def test_another_key_fails_authentication() -> None:
    with pytest.raises(RelayError) as err:
        parse(pack(_packet(), KEY), bytes(32))
    assert err.value.reason == "bad_auth"


def test_a_short_datagram_is_malformed() -> None:
    with pytest.raises(RelayError) as err:
        parse(b"\x01" * (HEADER + TAG_BYTES - 1), KEY)
    assert err.value.reason == "malformed"


def test_names_too_long_are_refused_when_packing() -> None:
    with pytest.raises(ValueError):
        pack(_packet(channel="c" * 256), KEY)


def test_the_gate_counts_each_refusal_by_reason() -> None:
    peers = {0: 1, 1: 3}
    epochs = {"ops": 5}
    gate = RelayGate(KEY, 0, peers, epochs)
    good = pack(_packet(), KEY)
    assert gate.accept(good) == _packet()
    assert gate.accept(b"junk") is None  # malformed
    assert gate.accept(pack(_packet(), bytes(32))) is None  # a peer without the key
    assert gate.accept(pack(_packet(sender=7), KEY)) is None  # no such worker
    assert gate.accept(pack(_packet(incarnation=2), KEY)) is None  # a replaced worker
    assert gate.accept(pack(_packet(sender=0, incarnation=1), KEY)) is None  # itself
    assert gate.accept(pack(_packet(epoch=4), KEY)) is None  # an older owner
    assert gate.accept(pack(_packet(epoch=6), KEY)) is not None  # a newer one is news
    assert gate.drops == {"malformed": 1, "bad_auth": 1, "unknown_peer": 3, "stale_epoch": 1}
    assert gate.accepted == 2


def test_the_gate_reads_peers_in_place() -> None:
    peers: dict[int, int] = {}
    gate = RelayGate(KEY, 0, peers)
    assert gate.accept(pack(_packet(), KEY)) is None
    peers[1] = 3  # the parent announced worker 1's incarnation 3
    assert gate.accept(pack(_packet(), KEY)) is not None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError):
        RelayGate(b"short", 0, {})


def test_a_routed_packet_carries_its_audience() -> None:
    key = bytes(range(32))
    sent = RelayPacket(
        0, 1, 2, "yard", "con", b"rtp", sends=("hq", "yard"), only=frozenset({"b1", "b2"})
    )
    got = parse(pack(sent, key), key)
    assert got == sent and got.routed and got.payload == b"rtp"
    allcall = RelayPacket(0, 1, 2, "hq", "con", b"rtp", sends=("hq", "yard"))
    assert parse(pack(allcall, key), key).only is None


def test_an_audience_that_does_not_name_its_channel_is_malformed() -> None:
    key = bytes(range(32))
    bad = pack(RelayPacket(0, 1, 2, "ops", "con", b"rtp", sends=("hq",)), key)
    with pytest.raises(RelayError) as err:
        parse(bad, key)
    assert err.value.reason == "malformed"
