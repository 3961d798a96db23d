"""DTLS 1.2 server for one WebRTC peer, sans I/O (pyOpenSSL with memory BIOs).

- RFC 6347: DTLS 1.2 (flights, retransmission timer, records; several records may share a
  datagram).
- RFC 5764: DTLS-SRTP (``use_srtp`` extension, keying material exporter, section 4.2 layout).
- RFC 8842 / RFC 8122: the peer's certificate is self-signed and authenticated by the
  ``a=fingerprint`` of its SDP, checked with :meth:`DtlsServer.verify_fingerprint` once the
  answer is known (the handshake may finish before the answer arrives).

Use (one object per peer, created when the first DTLS datagram arrives from an address that
passed an ICE check)::

    conn = DtlsServer(certificate)                 # certificate shared by the whole process
    for out in conn.feed(datagram): sendto(out, addr)
    t = conn.timeout()                             # after every feed / handle_timeout
    if t is not None: handle = loop.call_later(t, on_timer)   # on_timer: send handle_timeout()
    if conn.state is DtlsState.CONNECTED and conn.verify_fingerprint(answer.fingerprint):
        rx, tx = srtp.make_sessions(conn.srtp_profile, conn.keying)

OpenSSL gives up after repeated retransmissions (state ``failed``); the caller should still
bound the whole handshake with its own deadline. :meth:`feed` and :meth:`handle_timeout` never
raise: a failure sets ``state = FAILED`` and ``failure`` to a reason.
"""

from __future__ import annotations

import datetime
import hmac
import secrets
from collections.abc import Sequence
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from voice_server.media.srtp import DEFAULT_PROFILES, SrtpProfile, split_keying

__all__ = ["Certificate", "DtlsServer", "DtlsState", "format_fingerprint"]

DTLS1_2_VERSION = 0xFEFD  # not exported by pyOpenSSL
CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
)
DEFAULT_MTU = 1200  # UDP payload bytes per outgoing datagram (records are never split)
MIN_MTU = 256  # OpenSSL fails the handshake below about this
_READ_SIZE = 65536
_RECORD_HEADER = 13  # type, version, epoch, sequence number, length


def format_fingerprint(digest: bytes) -> str:
    """``b"\\xab\\x01"`` -> ``"AB:01"`` (SDP ``a=fingerprint`` notation)."""
    return ":".join(f"{b:02X}" for b in digest)


class Certificate:
    """An ECDSA P-256 self-signed certificate and its key, shared by all peers of a process.

    Holds cryptography objects (pyOpenSSL 26 deprecates its own X509/PKey types as inputs) and
    builds the pyOpenSSL :class:`SSL.Context` per SRTP profile list once.
    """

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate):
        self.private_key = private_key
        self.certificate = certificate
        #: ``"AB:CD:..."``, SHA-256 of the DER certificate, for ``a=fingerprint:sha-256``
        self.fingerprint = format_fingerprint(certificate.fingerprint(hashes.SHA256()))
        self._contexts: dict[tuple[str, ...], SSL.Context] = {}

    @classmethod
    def generate(cls, *, days: int = 30) -> Certificate:
        """A fresh key and certificate valid from a day ago for ``days`` days."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(16))])
        now = datetime.datetime.now(tz=datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def expires(self) -> datetime.datetime:
        return self.certificate.not_valid_after_utc

    def context(self, profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES) -> SSL.Context:
        """The (cached) DTLS server context offering ``profiles`` in preference order."""
        names = tuple(p.name for p in profiles)
        ctx = self._contexts.get(names)
        if ctx is None:
            if not names:
                raise ValueError("at least one SRTP profile is needed")
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_min_proto_version(DTLS1_2_VERSION)
            ctx.set_options(SSL.OP_NO_TICKET | SSL.OP_NO_QUERY_MTU)
            # Request the client's certificate; any self-signed one is accepted here and
            # checked against the SDP fingerprint later.
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *_args: True)
            ctx.use_certificate(self.certificate)
            ctx.use_privatekey(self.private_key)
            ctx.set_cipher_list(CIPHERS)
            ctx.set_tlsext_use_srtp(":".join(names).encode("ascii"))
            self._contexts[names] = ctx
        return ctx


class DtlsState(StrEnum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


def _split_datagrams(data: bytes, mtu: int) -> list[bytes]:
    """Group whole DTLS records into datagrams of at most ``mtu`` bytes (a bigger record
    travels alone); bytes that do not parse as records are sent as they are."""
    out: list[bytes] = []
    start = pos = 0
    n = len(data)
    while pos < n:
        if pos + _RECORD_HEADER > n:
            pos = n
            break
        end = pos + _RECORD_HEADER + ((data[pos + 11] << 8) | data[pos + 12])
        if end > n:
            pos = n
            break
        if end - start > mtu and pos > start:
            out.append(data[start:pos])
            start = pos
        pos = end
    if start < n:
        out.append(data[start:n])
    return out


class DtlsServer:
    """The DTLS server side of one peer; see the module docstring for the call pattern."""

    def __init__(
        self,
        certificate: Certificate,
        profiles: Sequence[SrtpProfile] = DEFAULT_PROFILES,
        *,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        if mtu < MIN_MTU:
            raise ValueError(f"DTLS MTU must be at least {MIN_MTU} bytes")
        self._profiles = {p.name.encode("ascii"): p for p in profiles}
        self._mtu = mtu
        self._ssl = SSL.Connection(certificate.context(profiles), None)
        self._ssl.set_accept_state()
        self._ssl.set_ciphertext_mtu(mtu)
        self.state = DtlsState.NEW
        #: why the state is FAILED (or CLOSED), for logs
        self.failure: str | None = None
        self.profile: SrtpProfile | None = None
        #: ``(rx_key_and_salt, tx_key_and_salt)`` for :func:`srtp.make_sessions`
        self.keying: tuple[bytes, bytes] | None = None
        #: ``"AB:CD:..."`` SHA-256 of the client's certificate, once connected
        self.peer_fingerprint: str | None = None

    @property
    def srtp_profile(self) -> str | None:
        """Name of the negotiated SRTP profile, once connected."""
        return self.profile.name if self.profile is not None else None

    def feed(self, datagram: bytes) -> list[bytes]:
        """Process one incoming DTLS datagram; return the datagrams to send back."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED) or not datagram:
            return []
        try:
            self._ssl.bio_write(datagram)
            if self.state is DtlsState.CONNECTED:
                self._read_records()
            else:
                self.state = DtlsState.CONNECTING
                self._handshake()
        except SSL.Error as exc:
            self._fail(f"DTLS error: {_reason(exc)}")
        except Exception as exc:  # pyOpenSSL may also raise ValueError/TypeError internally
            self._fail(f"DTLS error: {exc!r}")
        return self._drain()

    def timeout(self) -> float | None:
        """Seconds until :meth:`handle_timeout` is due, None if no timer is running."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return None
        t = self._ssl.DTLSv1_get_timeout()
        return None if t is None else float(t)

    def handle_timeout(self) -> list[bytes]:
        """Run OpenSSL's retransmission timer; return the datagrams to (re)send."""
        if self.state in (DtlsState.FAILED, DtlsState.CLOSED):
            return []
        try:
            self._ssl.DTLSv1_handle_timeout()
        except SSL.Error as exc:
            self._fail(f"DTLS handshake timed out: {_reason(exc)}")
        except Exception as exc:
            self._fail(f"DTLS timer error: {exc!r}")
        return self._drain()

    def close(self) -> list[bytes]:
        """Send close_notify (if connected) and enter ``closed``; return datagrams to send."""
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
        self.failure = self.failure or "closed locally"
        return out

    def verify_fingerprint(self, expected: str) -> bool:
        """Compare ``expected`` (SDP sha-256 value, any case) with the peer certificate's,
        in constant time. False before the handshake completed."""
        actual = self.peer_fingerprint
        if actual is None:
            return False
        return hmac.compare_digest(
            expected.strip().upper().encode("ascii", "replace"), actual.encode("ascii")
        )

    # -- internals ------------------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except SSL.WantReadError:
            return
        self._on_connected()

    def _on_connected(self) -> None:
        selected = self._ssl.get_selected_srtp_profile()
        profile = self._profiles.get(selected)
        if profile is None:
            self._fail("no SRTP profile negotiated")
            return
        cert = self._ssl.get_peer_certificate(as_cryptography=True)
        if cert is None:
            self._fail("peer sent no certificate")
            return
        material = self._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", profile.keying_length)
        self.profile = profile
        self.keying = split_keying(profile, bytes(material), server=True)
        self.peer_fingerprint = format_fingerprint(cert.fingerprint(hashes.SHA256()))
        self.state = DtlsState.CONNECTED
        # records that arrived with the last flight (unlikely) are consumed too
        self._read_records()

    def _read_records(self) -> None:
        """Consume post-handshake records: retransmitted flights are answered by OpenSSL,
        application data (we have no data channel) is discarded, close_notify closes."""
        while True:
            try:
                self._ssl.recv(_READ_SIZE)
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.state = DtlsState.CLOSED
                self.failure = "close_notify received"
                return

    def _fail(self, reason: str) -> None:
        self.state = DtlsState.FAILED
        self.failure = reason

    def _drain(self) -> list[bytes]:
        chunks: list[bytes] = []
        while True:
            try:
                data = self._ssl.bio_read(_READ_SIZE)
            except SSL.Error:
                break
            if not data:
                break
            chunks.append(data)
        if not chunks:
            return []
        return _split_datagrams(b"".join(chunks), self._mtu)


def _reason(exc: SSL.Error) -> str:
    args = exc.args[0] if exc.args else None
    if isinstance(args, list) and args:
        return "; ".join(str(part[-1]) for part in args if isinstance(part, tuple) and part)
    return repr(exc)
