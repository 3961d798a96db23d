"""The relay packet between media workers: round trip, authentication, refusals counted."""

from __future__ import annotations

import pytest

from voice_server.media.relay_packet import (
    HEADER,
    NONCE_BYTES,
    REPLAY_WINDOW,
    SEALED,
    TAG_BYTES,
    Opener,
    RelayError,
    RelayGate,
    RelayPacket,
    Sealer,
    pack,
    parse,
    sender_key,
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
    assert gate.drops == {
        "malformed": 1,
        "bad_auth": 1,
        "unknown_peer": 3,
        "stale_epoch": 1,
        "wrong_format": 0,
        "replayed": 0,
    }
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


# ---------------------------------------------------------------- the sealed format (#20)
SEAL = bytes(range(100, 132))


def _sealed_gate(peers: dict[int, int] | None = None) -> RelayGate:
    return RelayGate(KEY, 0, {1: 3} if peers is None else peers, {"ops": 5}, seal_key=SEAL)


def test_a_sealed_packet_round_trips_and_hides_its_payload() -> None:
    sealer = Sealer(SEAL, 1, 3)
    routed = _packet(sends=("hq", "ops"), only=frozenset({"b1"}), hold=True)
    for packet in (_packet(), routed):
        data = sealer.seal(packet)
        assert data[0] == SEALED and RTP not in data
        assert b"ops" in data  # the routing fields stay readable (and authenticated)
        assert Opener(SEAL).open(data, {1: 3}, 0) == packet
    # the nonce: the start's prefix and a counter, never the same twice
    first, second = sealer.seal(_packet()), sealer.seal(_packet())
    at = len(first) - len(RTP) - TAG_BYTES - NONCE_BYTES
    assert first[at : at + 4] == second[at : at + 4]
    assert int.from_bytes(second[at + 4 : at + 12], "big") == 3
    assert Sealer(SEAL, 1, 3).seal(_packet()) != Sealer(SEAL, 1, 3).seal(_packet())  # prefixes


def test_a_sealer_seals_only_its_own_start() -> None:
    with pytest.raises(ValueError):
        Sealer(SEAL, 1, 3).seal(_packet(incarnation=4))


def test_the_sealed_gate_counts_each_refusal_by_reason() -> None:
    gate = _sealed_gate()
    sealer = Sealer(SEAL, 1, 3)
    good = sealer.seal(_packet())
    assert gate.accept(good) == _packet()
    assert gate.accept(good) is None  # replayed
    assert gate.accept(b"") is None  # malformed (empty)
    assert gate.accept(good[: HEADER + 5]) is None  # malformed (truncated)
    assert gate.accept(good[:-1]) is None  # truncated in the ciphertext: bad_auth
    assert gate.accept(Sealer(bytes(32), 1, 3).seal(_packet())) is None  # wrong key: bad_auth
    tampered = bytearray(sealer.seal(_packet()))
    tampered[-TAG_BYTES - 2] ^= 0x01  # the ciphertext
    assert gate.accept(bytes(tampered)) is None  # bad_auth
    routing = bytearray(sealer.seal(_packet()))
    routing[HEADER] ^= 0x01  # the channel name (associated data)
    assert gate.accept(bytes(routing)) is None  # bad_auth
    assert gate.accept(Sealer(SEAL, 7, 3).seal(_packet(sender=7))) is None  # unknown node
    old = Sealer(SEAL, 1, 2).seal(_packet(incarnation=2))
    assert gate.accept(old) is None  # an old incarnation: unknown_peer
    assert gate.accept(pack(_packet(), KEY)) is None  # the plain format: wrong_format
    assert gate.accept(sealer.seal(_packet(epoch=4))) is None  # stale_epoch
    assert gate.drops == {
        "malformed": 2,
        "bad_auth": 4,
        "unknown_peer": 2,
        "stale_epoch": 1,
        "wrong_format": 1,
        "replayed": 1,
    }
    assert gate.accepted == 1
    assert gate.accept(sealer.seal(_packet())) is not None  # refusals leave the peer usable


def test_a_plain_gate_refuses_the_sealed_format() -> None:
    gate = RelayGate(KEY, 0, {1: 3}, {"ops": 5})
    assert gate.accept(Sealer(SEAL, 1, 3).seal(_packet())) is None
    assert gate.drops["wrong_format"] == 1 and gate.accepted == 0


def test_the_replay_window_takes_late_packets_once_and_refuses_older_ones() -> None:
    gate = _sealed_gate()
    sealer = Sealer(SEAL, 1, 3)
    sent = [sealer.seal(_packet()) for _ in range(REPLAY_WINDOW + 10)]
    assert gate.accept(sent[5]) is not None
    assert gate.accept(sent[2]) is not None  # late (reordered): taken
    assert gate.accept(sent[2]) is None  # once
    assert gate.accept(sent[-1]) is not None  # far ahead: the window slides
    assert gate.accept(sent[8]) is None  # now older than the window
    assert gate.accept(sent[-3]) is not None  # inside it
    assert gate.drops["replayed"] == 2 and gate.accepted == 4


def test_a_far_jump_of_the_counter_moves_the_window_there() -> None:
    gate = _sealed_gate()
    sealer = Sealer(SEAL, 1, 3)
    assert gate.accept(sealer.seal(_packet())) is not None
    sealer.counter = 1 << 62  # (a sender's own counter: never, but no 2^62-bit shift either)
    far = sealer.seal(_packet())
    assert gate.accept(far) is not None and gate.accept(far) is None
    assert gate.accept(sealer.seal(_packet())) is not None


def test_a_restarted_sender_starts_a_new_window() -> None:
    peers = {1: 3}
    gate = _sealed_gate(peers)
    assert gate.accept(Sealer(SEAL, 1, 3).seal(_packet())) is not None
    peers[1] = 4  # restarted: a new incarnation, its key and counter anew
    assert gate.accept(Sealer(SEAL, 1, 4).seal(_packet(incarnation=4))) is not None
    assert gate.drops["replayed"] == 0


def test_the_sender_key_differs_by_sender_and_start() -> None:
    keys = {sender_key(SEAL, s, i) for s in (0, 1) for i in (1, 2)}
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)
