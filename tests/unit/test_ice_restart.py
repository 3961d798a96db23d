"""ICE restart on the same transport: new local credentials, the old ones answered until the new
generation is nominated, the peer's new ufrag taken from its answer, DTLS/SRTP state kept."""

from __future__ import annotations

from tests.unit.test_media_transport import CERT, Recorder
from voice_server.media.negotiation import Negotiation
from voice_server.media.rtp import build_rtp
from voice_server.media.stun import StunClass, build_binding_request
from voice_server.media.stun import parse as parse_stun
from voice_server.media.transport import Transport, TransportState

OLD, NEW = ("127.0.0.2", 5000), ("127.0.0.4", 6000)


def check(ufrag: str, pwd: str, remote: str, *, use: bool = False) -> bytes:
    return build_binding_request(username=f"{ufrag}:{remote}", password=pwd.encode(),
                                 priority=1, tie_breaker=7, use_candidate=use)  # fmt: skip


def answered(ep: Recorder) -> StunClass:
    return parse_stun(ep.out[-1][0]).message_class


def connected() -> tuple[Recorder, Transport]:
    ep, t = Recorder(), Transport("s1", "oldU", "o" * 24, CERT)
    ep.register(t)
    t.remote_ufrag = "cliA"
    ep.datagram_received(check("oldU", "o" * 24, "cliA", use=True), OLD)
    assert t.remote == OLD
    return ep, t


def test_restart_answers_both_generations_then_only_the_new_one() -> None:
    ep, t = connected()
    marker = object()
    t.rx = t.tx = marker  # type: ignore[assignment]  # SRTP state: kept as it is
    ep.restart_ice(t, "newU", "n" * 24)
    assert (t.ufrag, t.pwd, t.restarting) == ("newU", "n" * 24, True)
    # old generation (consent on the old path) still answered
    ep.datagram_received(check("oldU", "o" * 24, "cliA"), OLD)
    assert answered(ep) is StunClass.SUCCESS
    # the new generation, with the peer's new ufrag not known yet: our new pwd authenticates
    ep.datagram_received(check("newU", "n" * 24, "cliB"), NEW)
    assert answered(ep) is StunClass.SUCCESS and ep.by_addr[NEW] is t
    ep.datagram_received(check("newU", "n" * 24, "cliB", use=True), NEW)
    assert t.remote == NEW and t.previous is None and ep.changes[-1] is t
    t.ice_restarted("cliB")
    # the old generation is retired, and its ufrag no longer routed
    before = ep.counters.drop_bad_stun
    ep.datagram_received(check("oldU", "o" * 24, "cliA"), OLD)
    assert ep.counters.drop_bad_stun == before + 1 and "oldU" not in ep.by_ufrag
    # the peer's new ufrag is now required
    ep.datagram_received(check("newU", "n" * 24, "cliX"), NEW)
    assert parse_stun(ep.out[-1][0]).error_code[0] == 401  # type: ignore[index]
    assert t.rx is marker and t.tx is marker


def test_old_password_on_the_new_ufrag_is_refused() -> None:
    ep, t = connected()
    ep.restart_ice(t, "newU", "n" * 24)
    ep.datagram_received(check("newU", "o" * 24, "cliB"), NEW)
    assert parse_stun(ep.out[-1][0]).error_code[0] == 401  # type: ignore[index]
    assert NEW not in ep.by_addr


def test_unregister_forgets_every_generation() -> None:
    ep, t = connected()
    ep.restart_ice(t, "newU", "n" * 24)
    ep.unregister(t)
    assert ep.by_ufrag == {}


def test_negotiation_restart_supersedes_the_offer_out() -> None:
    n = Negotiation(1, (("ops", (1, 2)),))
    assert n.propose(["ops", "hq"], lambda c: (3,) if c == "hq" else (1, 2)) is not None
    blocks = n.restart_ice()
    assert blocks == (("ops", (1, 2)), ("hq", (3,))) and n.restart == n.revision == 2
    assert n.expects(1) is None and n.expects(2) == blocks
    n.settle()
    assert n.restart is None and n.blocks == blocks and n.pending is None


class _PlainSrtp:
    """SRTP that authenticates everything (what the endpoint sees after a real unprotect)."""

    def unprotect(self, data: bytes) -> bytes:
        return data

    def unprotect_rtcp(self, data: bytes) -> bytes:
        return data


def test_authenticated_media_from_another_validated_address_moves_the_media_there() -> None:
    """A handover without a new nomination: the browser switches to a pair it had already
    checked (NEW) and its media comes from there; the server sends there at once. Media from an
    address no check validated moves nothing."""
    ep, t = connected()
    ep.datagram_received(check("oldU", "o" * 24, "cliA"), NEW)  # checked, not nominated
    assert t.remote == OLD and ep.by_addr[NEW] is t
    t.rx = _PlainSrtp()  # type: ignore[assignment]
    t.state = TransportState.CONNECTED
    packet = build_rtp(payload_type=111, seq=1, timestamp=960, ssrc=0x1234, payload=b"\xfc")
    ep.datagram_received(packet, ("127.0.0.9", 7000))  # never validated: dropped
    assert t.remote == OLD and ep.counters.drop_unknown_source == 1
    ep.datagram_received(packet, OLD)
    assert t.remote == OLD and ep.counters.media_latched == 0
    changes = len(ep.changes)
    ep.datagram_received(packet, NEW)
    assert t.remote == NEW and ep.counters.media_latched == 1 and ep.changes[changes:] == [t]
    receiver_report = bytes([0x80, 201, 0, 1, 0, 0, 0x12, 0x34])  # RTCP RR, no blocks
    ep.datagram_received(receiver_report, OLD)  # a listener's RTCP latches the same way
    assert t.remote == OLD and ep.counters.media_latched == 2
