"""ICE-lite and the DTLS gate: only addresses that passed a check may speak DTLS/SRTP."""

from __future__ import annotations

import pytest

from tests.hostile import forged_client_hello
from voice_server.media.counters import MediaCounters
from voice_server.media.dtls import Certificate
from voice_server.media.endpoint import MediaEndpoint
from voice_server.media.stun import StunClass, build_binding_request
from voice_server.media.stun import parse as parse_stun
from voice_server.media.transport import Transport, TransportState

CERT = Certificate.generate()


def _transport() -> Transport:
    return Transport("s1", "srvU", "p" * 24, CERT)


def _check(t: Transport, pwd: str | None = None, use: bool = False) -> bytes:
    return build_binding_request(
        username=f"{t.ufrag}:cliU",
        password=(pwd or t.pwd).encode(),
        priority=1,
        tie_breaker=7,
        use_candidate=use,
    )


class Recorder(MediaEndpoint):
    def __init__(self) -> None:
        self.out: list[tuple[bytes, tuple[str, int]]] = []
        self.changes: list[Transport] = []
        super().__init__(MediaCounters(), self.changes.append)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.out.append((data, addr))


def test_valid_check_is_answered_and_validates_the_address() -> None:
    ep, t = Recorder(), _transport()
    ep.register(t)
    ep.datagram_received(_check(t, use=True), ("127.0.0.1", 9000))
    reply = parse_stun(ep.out[-1][0])
    assert reply.message_class is StunClass.SUCCESS
    assert reply.xor_mapped_address == ("127.0.0.1", 9000)
    assert reply.verify_integrity(t.pwd.encode())
    assert ep.by_addr[("127.0.0.1", 9000)] is t and t.remote == ("127.0.0.1", 9000)
    assert t.state is TransportState.CONNECTING


def test_check_with_a_wrong_password_gets_401_and_validates_nothing() -> None:
    ep, t = Recorder(), _transport()
    ep.register(t)
    ep.datagram_received(_check(t, pwd="x" * 24), ("127.0.0.1", 9000))
    assert parse_stun(ep.out[-1][0]).error_code[0] == 401  # type: ignore[index]
    assert ep.by_addr == {} and ep.counters.drop_bad_stun == 1


def test_forged_client_hello_from_an_unchecked_address_is_dropped() -> None:
    ep, t = Recorder(), _transport()
    ep.register(t)
    ep.datagram_received(_check(t), ("127.0.0.1", 9000))
    ep.datagram_received(forged_client_hello(), ("127.0.0.1", 6666))
    assert ep.counters.drop_unknown_source == 1
    assert t.dtls.state.value == "new"  # the real peer's handshake is untouched


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x80\x6f", b"\xff" * 40, b"\x16" * 13])
def test_garbage_from_anywhere_is_counted_never_raised(data: bytes) -> None:
    ep = Recorder()
    ep.datagram_received(data, ("127.0.0.1", 1))
    assert sum(ep.counters.drops().values()) == 1
