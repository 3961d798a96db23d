"""Jitter on a path without netem: a user-space UDP relay that delays each datagram.

This kernel has neither the netem qdisc nor nftables' ``queue`` expression, so nothing in the
kernel can hold a packet back. What it has is NAT: :func:`rules` redirects the phones' UDP to
the server's media port (in the namespace's nat output hook) to :class:`JitterRelay`, which sends
each datagram on after a random delay, to the server from its own address (:data:`SOURCE`, one
socket per phone: the server sees each phone at its own peer-reflexive address) and back to the
phone from the socket the phone's packet reached (conntrack turns that source back into the
media port, so the phone sees the server answer from where it sent). Delays are drawn for each
datagram on its own, uniformly in ``[0, 2 * jitter]`` ms (netem's ``delay J J`` with a uniform
distribution: a mean of J, late packets overtaken as on a real jittery link), in the directions
asked (up: phone to server; down: server to phone).

Only for ``bench network`` inside its private namespace (:mod:`netns`); the relay counts what it
forwarded and what it dropped (a full schedule: bounded, :data:`MAX_HELD`).
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SOURCE", "JitterRelay", "delay_ms", "rules"]

SOURCE = "127.0.0.9"  # the relay's address towards the server (not redirected itself)
TABLE = "voice_bench_jitter"
MAX_HELD = 10_000  # datagrams waiting at once; beyond that they are dropped and counted


def delay_ms(rng: random.Random, jitter_ms: float) -> float:
    """One datagram's delay: uniform in [0, 2 × jitter] ms."""
    return rng.uniform(0.0, 2.0 * jitter_ms) if jitter_ms > 0 else 0.0


def rules(media_port: int, relay_port: int) -> str:
    """The nat table sending every phone's UDP for the media port to the relay instead."""
    return (
        f"table ip {TABLE} {{\n  chain out {{ type nat hook output priority -100; "
        f"policy accept;\n    ip saddr != {SOURCE} udp dport {media_port} "
        f"redirect to :{relay_port};\n  }}\n}}\n"
    )


#: a datagram waiting: (when it is due, a tie-breaker, the socket to send it from, it, where to)
Held = tuple[float, int, socket.socket, bytes, Any]


@dataclass
class JitterRelay:
    """Relays phones' datagrams to ``server`` and back, each delayed (:func:`delay_ms`)."""

    server: tuple[str, int]
    up_ms: float
    down_ms: float
    seed: int = 22
    forwarded: int = 0
    dropped: int = 0
    port: int = 0
    _rng: random.Random = field(init=False)
    _sel: selectors.DefaultSelector = field(init=False)
    _front: socket.socket = field(init=False)
    _upstream: dict[tuple[str, int], socket.socket] = field(init=False, default_factory=dict)
    _held: list[Held] = field(init=False, default_factory=list)
    _seq: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._sel = selectors.DefaultSelector()
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self._front.setblocking(False)
        self.port = self._front.getsockname()[1]
        self._sel.register(self._front, selectors.EVENT_READ, None)

    def start(self) -> JitterRelay:
        self._thread = threading.Thread(target=self._run, name="jitter-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in [self._front, *self._upstream.values()]:
            sock.close()
        self._sel.close()

    def _hold(self, delay: float, sock: socket.socket, data: bytes, dest: Any) -> None:
        if len(self._held) >= MAX_HELD:
            self.dropped += 1
            return
        due = time.monotonic() + delay / 1000.0
        heapq.heappush(self._held, (due, next(self._seq), sock, data, dest))

    def _upstream_for(self, phone: tuple[str, int]) -> socket.socket:
        sock = self._upstream.get(phone)
        if sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((SOURCE, 0))
            sock.setblocking(False)
            self._upstream[phone] = sock
            self._sel.register(sock, selectors.EVENT_READ, phone)
        return sock

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                _due, _n, sock, data, dest = heapq.heappop(self._held)
                try:
                    sock.sendto(data, dest)
                    self.forwarded += 1
                except OSError:
                    self.dropped += 1
            wait = min(0.05, self._held[0][0] - now) if self._held else 0.05
            for key, _mask in self._sel.select(timeout=max(0.0, wait)):
                readable = key.fileobj
                if not isinstance(readable, socket.socket):
                    continue
                try:
                    data, addr = readable.recvfrom(65536)
                except OSError:
                    continue
                if key.data is None:  # a phone's datagram, for the server
                    up = self._upstream_for(addr)
                    self._hold(delay_ms(self._rng, self.up_ms), up, data, self.server)
                else:  # the server's answer, for the phone, from the socket it wrote to
                    self._hold(delay_ms(self._rng, self.down_ms), self._front, data, key.data)
