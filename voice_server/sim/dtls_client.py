"""DTLS 1.2 client for a simulated participant, sans I/O (pyOpenSSL with memory BIOs).

The mirror of :mod:`voice_server.media.dtls` (the server side): RFC 6347 (DTLS 1.2), RFC 5764
(``use_srtp``, keying material exporter), RFC 8842 (the server is authenticated by the
``a=fingerprint`` of its offer, compared once the handshake is done).

Use (one object per simulated participant)::

    conn = DtlsClient(certificate, expected_fingerprint=offer.fingerprint)
    for out in conn.start(): send(out)             # ClientHello
    for out in conn.feed(datagram): send(out)      # every DTLS datagram from the server
    t = conn.timeout()                             # after start / feed / handle_timeout
    if t is not None: loop.call_later(t, on_timer) # on_timer: send conn.handle_timeout()
    if conn.state is DtlsState.CONNECTED:
        rx, tx = srtp.make_sessions(conn.profile, conn.keying)

:meth:`feed`, :meth:`start` and :meth:`handle_timeout` never raise: a failure (including a
server certificate that does not match the expected fingerprint) sets ``state = FAILED`` and
``failure`` to a reason.
"""

from __future__ import annotations

import hmac
import weakref
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from OpenSSL import SSL

from voice_server.media.dtls import (
    CIPHERS,
    DEFAULT_MTU,
    DTLS1_2_VERSION,
    Certificate,
    DtlsState,
    format_fingerprint,
)
from voice_server.media.srtp import DEFAULT_PROFILES, SrtpProfile, split_keying

__all__ = ["DtlsClient", "client_context"]

_READ_SIZE = 65536
_CONTEXTS: weakref.WeakKeyDictionary[Certificate, dict[tuple[str, ...], SSL.Context]] = (
    weakref.WeakKeyDictionary()
)


def client_context(
    certificate: Certificate, profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES
) -> SSL.Context:
    """The (cached) DTLS client context presenting ``certificate`` and offering ``profiles``.

    The server's self-signed certificate is accepted by OpenSSL and checked against the offer's
    fingerprint once the handshake completes.
    """
    names = tuple(p.name for p in profiles)
    cache = _CONTEXTS.setdefault(certificate, {})
    ctx = cache.get(names)
    if ctx is None:
        if not names:
            raise ValueError("at least one SRTP profile is needed")
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_min_proto_version(DTLS1_2_VERSION)
        ctx.set_max_proto_version(DTLS1_2_VERSION)
        ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
        ctx.set_verify(SSL.VERIFY_PEER, lambda *_args: True)
        ctx.use_certificate(certificate.certificate)
        ctx.use_privatekey(certificate.private_key)
        ctx.set_cipher_list(CIPHERS)
        ctx.set_tlsext_use_srtp(":".join(names).encode("ascii"))
        cache[names] = ctx
    return ctx


class DtlsClient:
    """The DTLS client side of one simulated participant."""

    def __init__(
        self,
        certificate: Certificate,
        *,
        expected_fingerprint: str | None,
        profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        self._profiles = {p.name.encode("ascii"): p for p in profiles}
        self._expected = expected_fingerprint
        self._ssl = SSL.Connection(client_context(certificate, profiles), None)
        self._ssl.set_connect_state()
        self._ssl.set_ciphertext_mtu(mtu)
        self.state = DtlsState.NEW
        self.failure: str | None = None
        self.profile: SrtpProfile | None = None
        #: ``(rx_key_and_salt, tx_key_and_salt)`` for :func:`srtp.make_sessions`
        self.keying: tuple[bytes, bytes] | None = None
        #: ``"AB:CD:..."`` SHA-256 of the server's certificate, once connected
        self.peer_fingerprint: str | None = None

    def start(self) -> list[bytes]:
        """Begin the handshake; return the ClientHello datagram(s)."""
        if self.state is not DtlsState.NEW:
            return []
        self.state = DtlsState.CONNECTING
        self._step()
        return self._drain()

    def feed(self, datagram: bytes) -> list[bytes]:
        """Process one DTLS datagram from the server; return datagrams to send back."""
        if self.state in (DtlsState.NEW, DtlsState.FAILED, DtlsState.CLOSED) or not datagram:
            return []
        try:
            self._ssl.bio_write(datagram)
        except Exception as exc:
            self._fail(f"DTLS error: {exc!r}")
            return []
        if self.state is DtlsState.CONNECTED:
            self._read_records()
        else:
            self._step()
        return self._drain()

    def timeout(self) -> float | None:
        """Seconds until :meth:`handle_timeout` is due, None if no timer is running."""
        if self.state is not DtlsState.CONNECTING:
            return None
        t = self._ssl.DTLSv1_get_timeout()
        return None if t is None else float(t)

    def handle_timeout(self) -> list[bytes]:
        """Run OpenSSL's retransmission timer; return the datagrams to (re)send."""
        if self.state is not DtlsState.CONNECTING:
            return []
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"DTLS handshake timed out: {exc!r}")
        except Exception as exc:
            self._fail(f"DTLS timer error: {exc!r}")
        return self._drain()

    def close(self) -> list[bytes]:
        """Send close_notify (if connected) and enter ``closed``."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return []
        out: list[bytes] = []
        if self.state is DtlsState.CONNECTED:
            try:
                self._ssl.shutdown()
            except SSL.Error:
                pass
            out = self._drain()
        self.state = DtlsState.CLOSED
        return out

    # -- internals ------------------------------------------------------------------------

    def _step(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            self._fail(f"DTLS error: {exc!r}")
            return
        except Exception as exc:  # pyOpenSSL may raise ValueError/TypeError internally
            self._fail(f"DTLS error: {exc!r}")
            return
        self._on_connected()

    def _on_connected(self) -> None:
        profile = self._profiles.get(self._ssl.get_selected_srtp_profile())
        if profile is None:
            self._fail("no SRTP profile negotiated")
            return
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._fail("server sent no certificate")
            return
        fingerprint = format_fingerprint(cert.fingerprint(hashes.SHA256()))
        if self._expected is not None and not hmac.compare_digest(
            self._expected.strip().upper().encode("ascii", "replace"), fingerprint.encode()
        ):
            self._fail("server certificate does not match the offer's fingerprint")
            return
        material = self._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", profile.keying_length)
        self.profile = profile
        self.keying = split_keying(profile, bytes(material), server=False)
        self.peer_fingerprint = fingerprint
        self.state = DtlsState.CONNECTED

    def _read_records(self) -> None:
        while True:
            try:
                self._ssl.recv(_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.state = DtlsState.CLOSED
                self.failure = "close_notify received"
                return
            except SSL.Error as exc:
                self._fail(f"DTLS error: {exc!r}")
                return

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.failure = reason

    def _drain(self) -> list[bytes]:
        out: list[bytes] = []
        while True:
            try:
                data = self._ssl.bio_read(_READ_SIZE)
            except SSL.Error:
                break
            if not data:
                break
            out.append(data)
        return out
