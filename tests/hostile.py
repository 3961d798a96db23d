"""A hostile UDP sender for tests: garbage, broken STUN, forged DTLS ClientHellos, fake RTP/RTCP."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time

from OpenSSL import SSL

from voice_server.media.dtls import Certificate
from voice_server.media.rtp import build_rtp
from voice_server.media.stun import build_binding_request


def forged_client_hello() -> bytes:
    """A genuine DTLS 1.2 ClientHello (with use_srtp) from a throwaway client."""
    cert = Certificate.generate()
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert.certificate)
    ctx.use_privatekey(cert.private_key)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    conn = SSL.Connection(ctx, None)
    conn.set_connect_state()
    try:
        conn.do_handshake()
    except SSL.WantReadError:
        pass
    return conn.bio_read(65536)


class HostileSender:
    """Sends a mix of bad datagrams to ``target`` from several sockets until stopped."""

    def __init__(self, target: tuple[str, int], rate: int = 1000, seed: int = 7) -> None:
        self.target = target
        self.rate = rate
        self.rng = random.Random(seed)
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.hello = forged_client_hello()

    def _packet(self) -> bytes:
        r = self.rng
        kind = r.randrange(7)
        if kind == 0:
            return os.urandom(r.randrange(1, 1400))
        if kind == 1:  # STUN header with a lying length / truncated attributes
            body = os.urandom(r.randrange(0, 40))
            return struct.pack("!HHI12s", 0x0001, len(body) + 8, 0x2112A442, os.urandom(12)) + body
        if kind == 2:  # a well-formed check for a ufrag nobody has, with a wrong password
            return build_binding_request(
                username=f"{r.getrandbits(32):08x}:evil",
                password=b"x" * 22,
                priority=1,
                tie_breaker=r.getrandbits(64),
                use_candidate=True,
            )
        if kind == 3:
            return self.hello
        if kind == 4:  # RTP with an audio level claiming speech
            return build_rtp(
                payload_type=111,
                seq=r.randrange(65536),
                timestamp=r.getrandbits(32),
                ssrc=r.getrandbits(32),
                payload=os.urandom(60),
                audio_level=(True, 10),
            )
        if kind == 5:  # RTCP SR-looking
            return bytes([0x80, 200]) + struct.pack("!H", 6) + os.urandom(24)
        return bytes([r.randrange(256)])

    def _run(self) -> None:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        interval = 1.0 / self.rate
        try:
            while not self._stop.is_set():
                start = time.monotonic()
                for _ in range(10):
                    try:
                        self.rng.choice(socks).sendto(self._packet(), self.target)
                        self.sent += 1
                    except OSError:
                        pass
                time.sleep(max(0.0, 10 * interval - (time.monotonic() - start)))
        finally:
            for s in socks:
                s.close()

    def __enter__(self) -> HostileSender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
