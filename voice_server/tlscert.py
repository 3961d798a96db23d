"""A self-signed certificate for this machine, so phones on the LAN get a secure context
(microphone, wake lock, service worker and installable app all need HTTPS off localhost).

``make run`` calls ``voice-server tls-cert``: when ``<data-dir>/tls/cert.pem`` does not exist it
creates an ECDSA P-256 key (``key.pem``, mode 0600) and a certificate whose subjectAltName lists
this machine's host names, ``localhost``, ``127.0.0.1``, ``::1`` and its LAN addresses, valid
for 825 days (the longest iOS accepts). It is its own CA (``CA:TRUE, pathlen:0``), so a phone
that installs and trusts it trusts the server: :func:`trust_instructions` says how.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "TlsFiles",
    "certificate_names",
    "ensure_self_signed",
    "local_names",
    "trust_instructions",
]

VALID_DAYS = 825
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path
    key: Path
    created: bool
    names: tuple[str, ...]
    addresses: tuple[str, ...]
    fingerprint: str  # SHA-256, colon-separated hex


def local_names() -> tuple[list[str], list[IpAddress]]:
    """Host names and addresses this machine is reached by (no packet is sent)."""
    names = ["localhost"]
    for name in (socket.gethostname(), socket.getfqdn()):
        if name and name not in names:
            names.append(name)
    addresses: list[IpAddress] = [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    candidates: list[str] = []
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            candidates.append(str(info[4][0]).split("%")[0])
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # UDP connect picks the outgoing interface; sends nothing
        candidates.append(str(s.getsockname()[0]))
    for text in candidates:
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(text)
            if not (addr.is_unspecified or addr.is_link_local) and addr not in addresses:
                addresses.append(addr)
    return names, addresses


def _fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def certificate_names(cert_path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The DNS names and IP addresses the first certificate of a PEM file is valid for."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return (), ()
    return (
        tuple(san.get_values_for_type(x509.DNSName)),
        tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)),
    )


def ensure_self_signed(
    data_dir: Path, extra_names: list[str] | None = None, *, force: bool = False
) -> TlsFiles:
    """Create ``<data_dir>/tls/{cert,key}.pem`` unless they exist (or ``force``)."""
    tls_dir = data_dir / "tls"
    cert_path, key_path = tls_dir / "cert.pem", tls_dir / "key.pem"
    if cert_path.exists() and key_path.exists() and not force:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return TlsFiles(
            cert_path,
            key_path,
            False,
            tuple(san.get_values_for_type(x509.DNSName)),
            tuple(str(a) for a in san.get_values_for_type(x509.IPAddress)),
            _fingerprint(cert),
        )
    names, addresses = local_names()
    for extra in extra_names or []:
        try:
            addr = ipaddress.ip_address(extra)
            if addr not in addresses:
                addresses.append(addr)
        except ValueError:
            if extra not in names:
                names.append(extra)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[-1][:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "voice-server (self-signed)"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(n) for n in names] + [x509.IPAddress(a) for a in addresses]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    tls_dir.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp_key = key_path.with_suffix(".tmp")
    fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    os.replace(tmp_key, key_path)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(
        cert_path,
        key_path,
        True,
        tuple(names),
        tuple(str(a) for a in addresses),
        _fingerprint(cert),
    )


def trust_instructions(files: TlsFiles) -> list[str]:
    return [
        f"TLS certificate {files.cert} ({'created' if files.created else 'existing'}, self-signed)",
        f"  names: {', '.join(files.names + files.addresses)}",
        f"  SHA-256 fingerprint: {files.fingerprint}",
        "  To trust it on a phone, copy cert.pem to it (e.g. from https://<this host>/ after "
        "accepting the warning, or by mail/MDM), then:",
        "    Android: Settings > Security > Encryption & credentials > Install a certificate > "
        "CA certificate",
        "    iPhone: open the file, Settings > General > VPN & Device Management > install the "
        "profile, then Settings > General > About > Certificate Trust Settings > enable it",
        "  On this machine: Debian: cp cert.pem /usr/local/share/ca-certificates/voice.crt && "
        "update-ca-certificates (browsers may need it in their own store)",
        "  A certificate from your organisation's CA or a reverse proxy is better: see README.",
    ]
