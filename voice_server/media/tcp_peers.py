"""Bookkeeping of ICE-TCP connections (RFC 6544 passive candidate), apart from socket I/O.

- :class:`TcpAddress`: a TCP peer's ``(host, port)``. It never equals a UDP address (a plain
  tuple), so one transport table can hold both; the forwarding path tells them apart by type.
- :class:`OutQueue`: what waits to be written to one connection, bounded (``limit`` bytes,
  64 KiB by default). A slow reader never stalls others and never grows memory: when a new frame
  does not fit, the oldest whole frames are dropped (never the one partly written, which would
  break RFC 4571 framing) and counted.
- :class:`Admission`: connections that have not yet sent a valid ICE check are *pending*: at
  most ``max_pending`` of them in all, ``max_per_host`` from one address, each given
  ``deadline`` seconds; over a limit a new connection is refused, past its deadline one is closed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Admission", "OutQueue", "TcpAddress"]


class TcpAddress(tuple[str, int]):
    """The address of an ICE-TCP peer connection; distinct from the same UDP address."""

    __slots__ = ()

    def __new__(cls, host: str, port: int) -> TcpAddress:
        return super().__new__(cls, (host, port))

    def __eq__(self, other: object) -> bool:
        return type(other) is TcpAddress and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("tcp", self[0], self[1]))

    def __repr__(self) -> str:
        return f"TcpAddress({self[0]!r}, {self[1]})"


class OutQueue:
    """Frames waiting to be written to one connection (see the module docstring)."""

    __slots__ = ("_frames", "_head_sent", "dropped", "dropped_bytes", "limit", "size")

    def __init__(self, limit: int = 64 * 1024) -> None:
        self.limit = limit
        self._frames: deque[bytes] = deque()
        self._head_sent = 0  # bytes of the first frame already written
        self.size = 0  # bytes waiting, in all
        self.dropped = 0  # frames dropped to make room
        self.dropped_bytes = 0

    def __bool__(self) -> bool:
        return bool(self._frames)

    def push(self, data: bytes) -> int:
        """Queue one framed packet; returns how many frames were dropped to make room (the new
        one itself when it cannot fit at all)."""
        dropped = 0
        if len(data) > self.limit:
            self.dropped += 1
            self.dropped_bytes += len(data)
            return 1
        frames = self._frames
        while self.size + len(data) > self.limit and frames:
            if self._head_sent:
                if len(frames) == 1:
                    break
                victim = frames[1]  # the head is partly written: keep it, drop the next
                del frames[1]
            else:
                victim = frames.popleft()
            self.size -= len(victim)
            self.dropped_bytes += len(victim)
            dropped += 1
        if self.size + len(data) > self.limit:  # only the partly written head is left
            self.dropped += dropped + 1
            self.dropped_bytes += len(data)
            return dropped + 1
        frames.append(data)
        self.size += len(data)
        self.dropped += dropped
        return dropped

    def view(self) -> memoryview:
        """The unwritten part of the first frame (queue must not be empty)."""
        return memoryview(self._frames[0])[self._head_sent :]

    def consume(self, n: int) -> None:
        """``n`` bytes (at most the unwritten part of the first frame) were written."""
        head = self._frames[0]
        self._head_sent += n
        if self._head_sent >= len(head):
            self._frames.popleft()
            self.size -= len(head)
            self._head_sent = 0

    def clear(self) -> None:
        self._frames.clear()
        self._head_sent = 0
        self.size = 0


@dataclass(slots=True)
class Admission:
    """Limits on connections still pending their first valid ICE check (module docstring)."""

    max_pending: int = 1000
    max_per_host: int = 20
    deadline: float = 5.0
    pending: dict[TcpAddress, float] = field(default_factory=dict)  # address -> deadline
    per_host: dict[str, int] = field(default_factory=dict)

    def admit(self, addr: TcpAddress, now: float) -> str | None:
        """Record a new connection; None when admitted, else why it is refused."""
        if len(self.pending) >= self.max_pending:
            return "too_many_pending"
        if self.per_host.get(addr[0], 0) >= self.max_per_host:
            return "too_many_from_host"
        self.pending[addr] = now + self.deadline
        self.per_host[addr[0]] = self.per_host.get(addr[0], 0) + 1
        return None

    def settle(self, addr: TcpAddress) -> None:
        """The connection sent a valid check, or closed: it is pending no more."""
        if self.pending.pop(addr, None) is None:
            return
        left = self.per_host[addr[0]] - 1
        if left:
            self.per_host[addr[0]] = left
        else:
            del self.per_host[addr[0]]

    def expired(self, now: float) -> list[TcpAddress]:
        """Pending connections past their deadline (still pending: settle them on close)."""
        return [addr for addr, until in self.pending.items() if until <= now]
