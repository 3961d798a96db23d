"""A real coturn (Debian's ``turnserver``) for tests and benchmarks in a private network
namespace: TURN over TLS only, on an address of 127.0.0.0/8, with a given certificate, the TURN
REST API's shared secret (``use-auth-secret``). ``allow-loopback-peers`` is set here and only
here: the relay must reach a server on 127.0.0.1 in a namespace, never in a deployment (README,
"Networks that allow only HTTPS")."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["SECRET", "Turn", "missing", "nft", "running_turn"]

SECRET = "test-turn-secret-not-for-production"
REALM = "voice.test"

CONFIG = """\
listening-ip={address}
relay-ip={address}
tls-listening-port={port}
no-udp
no-tcp
no-dtls
min-port={relay_min}
max-port={relay_max}
cert={cert}
pkey={key}
use-auth-secret
static-auth-secret={secret}
realm={realm}
fingerprint
allow-loopback-peers
no-multicast-peers
no-cli
relay-threads=1
no-rfc5780
no-stun-backward-compatibility
userdb={folder}/turndb
pidfile={folder}/turnserver.pid
log-file=stdout
simple-log
verbose
"""


def missing() -> str | None:
    """Why coturn cannot run here (None when it can)."""
    if shutil.which("turnserver") is None:
        return "coturn (Debian package) is not installed (scripts/install-test-deps.sh)"
    if shutil.which("nft") is None:
        return "nftables is not installed (scripts/install-test-deps.sh)"
    return None


@dataclass
class Turn:
    address: str
    port: int
    ca: Path
    proc: subprocess.Popen[bytes]
    log_path: Path
    chain: Path
    secret: str = SECRET

    @property
    def url(self) -> str:
        return f"turns:{self.address}:{self.port}?transport=tcp"

    def ready(self) -> bool:
        """True once a TLS handshake with the relay succeeds (checked against the test CA)."""
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with socket.create_connection((self.address, self.port), timeout=1) as raw:
                with context.wrap_socket(raw, server_hostname=self.address):
                    return True
        except (OSError, ssl.SSLError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def allocations(self) -> int:
        """Relay allocations coturn granted so far (its log)."""
        return self.log().count("ALLOCATE processed, success")

    def server_env(self, **extra: str) -> dict[str, str]:
        """Environment for a voice server that hands out this relay (and ``extra``)."""
        return {
            "VOICE_GRACE_SECONDS": "4",
            "VOICE_TURN_URLS": json.dumps([self.url]),
            "VOICE_TURN_SECRET": self.secret,
            **extra,
        }

    @property
    def chromium_args(self) -> tuple[str, ...]:
        """Chromium checks a TURN relay's certificate (it refuses an unknown CA: error 701);
        this pins the relay's key, as a phone trusts a public CA's certificate."""
        cert = x509.load_pem_x509_certificate(self.chain.read_bytes())
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
        return (f"--ignore-certificate-errors-spki-list={pin}",)


def nft(ruleset: str) -> None:
    """Load an nftables ruleset (in the caller's network namespace)."""
    subprocess.run(["nft", "-f", "-"], input=ruleset, text=True, check=True)


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_turn(
    folder: Path,
    chain: Path,
    key: Path,
    ca: Path,
    *,
    address: str = "127.0.0.1",
    port: int | None = None,
    timeout: float = 30.0,
) -> Iterator[Turn]:
    """coturn on ``address:port`` (TLS only) until the block ends; ``folder`` holds its files.
    ``chain``/``key``: its certificate (naming ``address``), which ``ca`` verifies."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or _free_port(address)
    relay_min = 49152 + (port % 8000)  # a small range of its own, away from other tests'
    (folder / "turnserver.conf").write_text(
        CONFIG.format(
            address=address,
            port=port,
            relay_min=relay_min,
            relay_max=relay_min + 200,
            cert=chain,
            key=key,
            secret=SECRET,
            realm=REALM,
            folder=folder,
        )
    )
    log_path = folder / "turnserver.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            ["turnserver", "-c", str(folder / "turnserver.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    turn = Turn(address, port, ca, proc, log_path, chain)
    try:
        deadline = time.monotonic() + timeout
        while not turn.ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coturn did not start:\n{turn.log()[-3000:]}")
            time.sleep(0.1)
        yield turn
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        proc.kill()  # nothing once it has exited
        proc.wait()
