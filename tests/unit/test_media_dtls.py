"""DTLS server: in-process handshakes with a pyOpenSSL client over memory BIOs."""

from __future__ import annotations

import time

import pylibsrtp
import pytest
from cryptography.hazmat.primitives import hashes
from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL

from voice_server.media import rtp, srtp
from voice_server.media.dtls import Certificate, DtlsServer, DtlsState, format_fingerprint
from voice_server.media.srtp import SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80, SrtpProfile


@pytest.fixture(scope="module")
def server_cert() -> Certificate:
    return Certificate.generate()


@pytest.fixture(scope="module")
def client_cert() -> Certificate:
    return Certificate.generate()


class Client:
    """A DTLS client like a browser's: pyOpenSSL in connect state with memory BIOs."""

    def __init__(self, cert: Certificate, profiles: bytes = b"SRTP_AES128_CM_SHA1_80") -> None:
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *_a: True)
        ctx.use_certificate(cert.certificate)
        ctx.use_privatekey(cert.private_key)
        if profiles:
            ctx.set_tlsext_use_srtp(profiles)
        self.ssl = SSL.Connection(ctx, None)
        self.ssl.set_connect_state()
        self.done = False

    def step(self, incoming: list[bytes]) -> list[bytes]:
        for d in incoming:
            self.ssl.bio_write(d)
        if not self.done:
            try:
                self.ssl.do_handshake()
                self.done = True
            except SSL.WantReadError:
                pass
        else:
            try:
                self.ssl.recv(65536)
            except (SSL.WantReadError, SSL.ZeroReturnError):
                pass
        out = []
        while True:
            try:
                out.append(self.ssl.bio_read(65536))
            except SSL.WantReadError:
                return out

    def keying(self) -> tuple[str, bytes]:
        name = self.ssl.get_selected_srtp_profile().decode()
        p = srtp.PROFILES[name]
        return name, self.ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", p.keying_length)


def handshake(server: DtlsServer, client: Client, max_rounds: int = 10) -> None:
    to_server = client.step([])
    for _ in range(max_rounds):
        to_client: list[bytes] = []
        for d in to_server:
            to_client += server.feed(d)
        to_server = client.step(to_client)
        if client.done and server.state is not DtlsState.CONNECTING and not to_server:
            return
    raise AssertionError("handshake did not finish")


def srtp_round_trip(server: DtlsServer, client: Client) -> None:
    """Client protects with its tx key, server unprotects; and the other way round."""
    name, material = client.keying()
    profile = srtp.PROFILES[name]
    c_rx, c_tx = srtp.make_sessions(name, srtp.split_keying(profile, material, server=False))
    assert server.srtp_profile == name and server.keying is not None
    s_rx, s_tx = srtp.make_sessions(server.srtp_profile, server.keying)
    pkt = rtp.build_rtp(payload_type=111, seq=1, timestamp=960, ssrc=7, payload=b"hello" * 10)
    assert s_rx.unprotect(c_tx.protect(pkt)) == pkt
    assert c_rx.unprotect(s_tx.protect(pkt)) == pkt
    with pytest.raises(pylibsrtp.Error):
        s_rx.unprotect(s_tx.protect(pkt))  # the directions use different keys


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (b"SRTP_AES128_CM_SHA1_80", "SRTP_AES128_CM_SHA1_80"),
        (b"SRTP_AES128_CM_SHA1_80:SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_128_GCM"),
        (b"SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_128_GCM"),
    ],
)
def test_handshake_derives_matching_srtp_keys(
    server_cert: Certificate, client_cert: Certificate, offered: bytes, expected: str
) -> None:
    server = DtlsServer(server_cert)
    client = Client(client_cert, offered)
    handshake(server, client)
    assert server.state is DtlsState.CONNECTED, server.failure
    assert server.srtp_profile == expected  # the server's preference wins
    assert server.timeout() is None
    srtp_round_trip(server, client)


def test_peer_fingerprint_is_the_client_certificate(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server = DtlsServer(server_cert)
    assert not server.verify_fingerprint(client_cert.fingerprint)  # not yet connected
    handshake(server, Client(client_cert))
    assert server.peer_fingerprint == client_cert.fingerprint
    assert server.verify_fingerprint(client_cert.fingerprint.lower())
    assert server.verify_fingerprint(" " + client_cert.fingerprint + " ")
    assert not server.verify_fingerprint(server_cert.fingerprint)
    assert not server.verify_fingerprint("")
    assert not server.verify_fingerprint("é")


def test_certificate_shape(server_cert: Certificate) -> None:
    fp = server_cert.fingerprint
    assert len(fp) == 95 and fp == fp.upper() and fp.count(":") == 31
    assert fp == format_fingerprint(server_cert.certificate.fingerprint(hashes.SHA256()))
    assert server_cert.certificate.not_valid_before_utc < server_cert.expires
    assert server_cert.context() is server_cert.context()  # built once, shared


def test_lost_flights_are_retransmitted_on_timers(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    """Two scenarios share one wait of about a second (OpenSSL's initial DTLS timer):
    A loses the server's first flight (the server's timer resends it); B loses the server's
    final ChangeCipherSpec+Finished (the client's timer resends its flight; the connected
    server answers it again)."""
    server_a, client_a = DtlsServer(server_cert), Client(client_cert)
    hello = client_a.step([])
    assert server_a.timeout() is None
    lost = [out for d in hello for out in server_a.feed(d)]
    assert lost  # ServerHello..ServerHelloDone, dropped on the floor
    t = server_a.timeout()
    assert t is not None and 0 < t <= 1.0
    assert server_a.handle_timeout() == []  # not due yet

    server_b, client_b = DtlsServer(server_cert), Client(client_cert)
    flight3 = client_b.step([o for d in client_b.step([]) for o in server_b.feed(d)])
    flight4 = [o for d in flight3 for o in server_b.feed(d)]
    assert server_b.state is DtlsState.CONNECTED and flight4  # flight4 is lost
    assert [o for d in flight3 for o in server_b.feed(d)] == []  # a replayed copy is dropped

    client_t = client_b.ssl.DTLSv1_get_timeout()
    assert client_t is not None
    time.sleep(max(t, client_t) + 0.02)

    again = server_a.handle_timeout()
    assert again
    for d in client_a.step(again):
        client_a.step(server_a.feed(d))
    assert server_a.state is DtlsState.CONNECTED, server_a.failure
    srtp_round_trip(server_a, client_a)

    client_b.ssl.DTLSv1_handle_timeout()
    resent = client_b.step([])
    assert resent
    answer = [o for d in resent for o in server_b.feed(d)]
    assert answer and server_b.state is DtlsState.CONNECTED
    client_b.step(answer)
    assert client_b.done
    srtp_round_trip(server_b, client_b)


def test_records_are_never_split_and_datagrams_respect_the_mtu(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server = DtlsServer(server_cert, mtu=300)
    client = Client(client_cert)
    flight2 = [o for d in client.step([]) for o in server.feed(d)]
    assert len(flight2) > 1
    for dgram in flight2:
        assert len(dgram) <= 300
        pos = 0
        while pos < len(dgram):  # whole records only
            pos += 13 + int.from_bytes(dgram[pos + 11 : pos + 13], "big")
        assert pos == len(dgram)
    flight3 = [o for dgram in flight2 for o in client.step([dgram])]
    client.step([o for d in flight3 for o in server.feed(d)])
    assert server.state is DtlsState.CONNECTED and client.done
    srtp_round_trip(server, client)


def test_mtu_below_openssl_minimum_is_refused(server_cert: Certificate) -> None:
    with pytest.raises(ValueError):
        DtlsServer(server_cert, mtu=200)


def test_close_notify_closes(server_cert: Certificate, client_cert: Certificate) -> None:
    server = DtlsServer(server_cert)
    client = Client(client_cert)
    handshake(server, client)
    client.ssl.shutdown()
    alert = client.ssl.bio_read(65536)
    server.feed(alert)
    assert server.state is DtlsState.CLOSED
    assert server.feed(alert) == []


def test_local_close_sends_close_notify(server_cert: Certificate, client_cert: Certificate) -> None:
    server = DtlsServer(server_cert)
    client = Client(client_cert)
    handshake(server, client)
    out = server.close()
    assert out and server.state is DtlsState.CLOSED
    client.ssl.bio_write(out[0])
    with pytest.raises(SSL.ZeroReturnError):
        client.ssl.recv(100)


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x16", b"\x16\xfe\xfd" + bytes(20), bytes(range(256)) * 2, b"\x17\xfe\xfd" + bytes(60)],
)
def test_garbage_before_handshake_fails_or_is_ignored(
    server_cert: Certificate, garbage: bytes
) -> None:
    server = DtlsServer(server_cert)
    out = server.feed(garbage)
    assert isinstance(out, list)
    assert server.state in (DtlsState.NEW, DtlsState.CONNECTING, DtlsState.FAILED)
    if server.state is DtlsState.FAILED:
        assert server.failure


def test_garbage_after_handshake_is_ignored(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    server = DtlsServer(server_cert)
    client = Client(client_cert)
    handshake(server, client)
    keying = server.keying
    for garbage in (b"\x17\xfe\xfd\x00\x01" + bytes(8) + b"\x00\x10" + bytes(16), b"\x16", b""):
        assert server.feed(garbage) == []
    assert server.state is DtlsState.CONNECTED and server.keying == keying


def test_client_without_srtp_fails(server_cert: Certificate, client_cert: Certificate) -> None:
    server = DtlsServer(server_cert)
    client = Client(client_cert, b"")
    to_server = client.step([])
    for _ in range(5):
        to_client = [o for d in to_server for o in server.feed(d)]
        to_server = client.step(to_client)
        if server.state is not DtlsState.CONNECTING:
            break
    assert server.state is DtlsState.FAILED
    assert server.failure and "SRTP" in server.failure
    assert server.feed(b"\x16\xfe\xfd") == [] and server.timeout() is None


def test_client_without_certificate_fails(server_cert: Certificate) -> None:
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    client = SSL.Connection(ctx, None)
    client.set_connect_state()
    server = DtlsServer(server_cert)
    for _ in range(4):
        try:
            client.do_handshake()
        except SSL.Error:
            pass
        out = []
        while True:
            try:
                out.append(client.bio_read(65536))
            except SSL.Error:
                break
        for d in out:
            for back in server.feed(d):
                client.bio_write(back)
    assert server.state is DtlsState.FAILED and server.failure


def test_only_listed_profiles_are_offered(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    only_cm: tuple[SrtpProfile, ...] = (SRTP_AES128_CM_SHA1_80,)
    server = DtlsServer(server_cert, only_cm)
    handshake(server, Client(client_cert, b"SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"))
    assert server.srtp_profile == "SRTP_AES128_CM_SHA1_80"
    assert server.profile is SRTP_AES128_CM_SHA1_80
    assert SRTP_AEAD_AES_128_GCM.keying_length == 56


_records = st.builds(
    lambda ctype, epoch, body: (
        bytes([ctype, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + bytes(6)
        + len(body).to_bytes(2, "big")
        + body
    ),
    st.integers(20, 25),
    st.integers(0, 2),
    st.binary(max_size=80),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=120) | _records, min_size=1, max_size=3))
def test_random_datagrams_never_raise(datagrams: list[bytes]) -> None:
    server = DtlsServer(_FUZZ_CERT)
    for d in datagrams:
        assert isinstance(server.feed(d), list)
        server.timeout()
        server.handle_timeout()
    assert server.state in (DtlsState.NEW, DtlsState.CONNECTING, DtlsState.FAILED)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=120) | _records, min_size=1, max_size=3))
def test_random_datagrams_after_handshake_never_raise(datagrams: list[bytes]) -> None:
    server = DtlsServer(_FUZZ_CERT)
    client = Client(_FUZZ_CERT)
    handshake(server, client)
    for d in datagrams:
        assert isinstance(server.feed(d), list)
    assert server.state in (DtlsState.CONNECTED, DtlsState.FAILED, DtlsState.CLOSED)
    assert server.keying is not None


_FUZZ_CERT = Certificate.generate()
