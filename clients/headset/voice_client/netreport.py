"""The headset client's network diagnostics (signaling ``stats``, every ~5 s), as the phone app
sends them: the path its media takes, the round-trip time, and the loss and jitter since the
previous report. Pure: it turns counters (read from aiortc by ``peer.ClientPeer.counters``) into
a message; the client keeps the previous counters.

aiortc has no ICE-TCP, so its path is ``udp`` (a host pair) or ``turn-tls`` (a relay candidate:
the only relays it is given are ``turns:`` ones). ``concealed_ratio`` is the share of the
frames played since the previous report that its receive buffer filled (``voice_client.jitter``:
concealed or recovered from FEC), left out when no audio was played.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["INTERVAL", "Counters", "report"]

INTERVAL = 5.0  # seconds between reports (the server keeps at most one per 2 s)
_MAX_MS = 60_000.0


@dataclass(frozen=True, slots=True)
class Counters:
    """What aiortc counts, summed over the received streams."""

    relay: bool  # the selected pair's local candidate is a relay candidate
    received: int  # RTP packets received
    lost: int  # RTP packets lost (the receiver's count)
    jitter_s: float | None  # the largest interarrival jitter, seconds
    rtt_s: float | None  # round-trip time from the remote's receiver report, seconds
    frames: int = 0  # frames decoded from packets (the receive buffer's count)
    filled: int = 0  # frames the receive buffer filled for missing packets


def report(now: Counters, before: Counters | None) -> dict[str, Any]:
    """The ``stats`` fields for ``now`` (loss over the time since ``before``)."""
    out: dict[str, Any] = {"path": "turn-tls" if now.relay else "udp"}
    if now.rtt_s is not None and now.rtt_s >= 0:
        out["rtt_ms"] = round(min(_MAX_MS, now.rtt_s * 1000), 1)
    if now.jitter_s is not None and now.jitter_s >= 0:
        out["jitter_ms"] = round(min(_MAX_MS, now.jitter_s * 1000), 1)
    received = now.received - (before.received if before else 0)
    lost = max(0, now.lost - (before.lost if before else 0))
    if received + lost > 0 and received >= 0:
        out["loss"] = round(lost / (received + lost), 4)
    filled = max(0, now.filled - (before.filled if before else 0))
    played = max(0, now.frames - (before.frames if before else 0)) + filled
    if played > 0:
        out["concealed_ratio"] = round(filled / played, 4)
    return out
