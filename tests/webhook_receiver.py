"""A webhook receiver for tests: a threaded HTTP(S) server on 127.0.0.1 that records every
request (headers, body) and answers from a plan (a status per request, the last one repeated;
a 3xx carries a Location)."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Receiver:
    url: str
    statuses: list[int] = field(default_factory=lambda: [200])
    location: str = ""
    #: seconds the n-th request (from 1) waits before it is recorded and answered: a slow receiver
    slow: dict[int, float] = field(default_factory=dict)
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, n: int, timeout: float = 30.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"{self.url}: {len(self.got)} requests, not {n}")


@contextmanager
def receiving(
    certs: tuple[Path, Path] | None = None, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    """A receiver (HTTPS with ``certs`` = (chain, key)); its URL names ``host``."""
    receiver: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with receiver.lock:
                receiver.arrived += 1
                n = receiver.arrived
            time.sleep(receiver.slow.get(n, 0.0))
            with receiver.lock:
                receiver.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                n = len(receiver.got)
                status = receiver.statuses[min(n, len(receiver.statuses)) - 1]
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if certs is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs[0]), str(certs[1]))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    receiver = Receiver(f"{scheme}://{host}:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
