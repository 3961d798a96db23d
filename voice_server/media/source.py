"""A server-side source: a talker with no peer connection behind it (an announcement, a stream
relayed from another process), forwarded like any participant.

It is attached to the plane with a route (:meth:`MediaPlane.attach_source`) and produces plain
RTP packets with its own SSRC and the RFC 6464 audio-level extension filled in, which go to the
same router members a transport's decrypted packets go to: the same talk detection, slots, talk
events and call-log tap. It never listens (``media_ready`` is False), so no router sends to it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from voice_server.media.rtp import build_rtp
from voice_server.media.transport import Address

__all__ = ["LEVEL_EXT_ID", "ServerSource"]

LEVEL_EXT_ID = 1  # the audio-level extension id of the server's offer
SILENCE = 127


class ServerSource:
    """One server-side talker. ``send`` is called on the event loop, one Opus frame a call."""

    media_ready = False  # it never hears anything
    logged = True  # its bursts go to the call-log tap (an announcement writes its own rows)
    relayed = False  # a talker of another media worker: never relayed again
    remote: Address | None = None
    tx = None

    def __init__(
        self, session_id: str, *, payload_type: int, clock_ns: Callable[[], int] | None = None
    ) -> None:
        self.session_id = session_id
        self.level_ext_id = LEVEL_EXT_ID
        self.payload_type = payload_type
        self.ssrc = secrets.randbits(32) or 1
        self.seq = secrets.randbits(16)
        self.timestamp = secrets.randbits(32)
        self.sent = 0
        self.sink: Callable[[bytes, int], None] | None = None  # bound by the plane
        self._clock_ns = clock_ns or time.perf_counter_ns

    def send(
        self, opus: bytes, *, level: int, samples: int = 960, now_ns: int | None = None
    ) -> bytes:
        """Send one Opus frame (``samples`` at 48 kHz) at audio level ``level`` (0 loudest,
        127 silence: it drives the talk detector as a phone's level does), ``now_ns`` on the
        ``perf_counter_ns`` clock (now when not given). Returns the RTP packet produced."""
        packet = build_rtp(
            payload_type=self.payload_type,
            seq=self.seq,
            timestamp=self.timestamp,
            ssrc=self.ssrc,
            payload=opus,
            audio_level=(level < SILENCE, level),
            audio_level_id=self.level_ext_id,
        )
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        self.sent += 1
        sink = self.sink
        if sink is not None:
            sink(packet, self._clock_ns() if now_ns is None else now_ns)
        return packet
