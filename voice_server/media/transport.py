"""One participant's WebRTC transport: ICE-lite credentials, DTLS server, SRTP sessions.

mediasoup's vocabulary: a *transport* is one participant's ICE/DTLS/SRTP link. It does no
socket I/O: methods return the datagrams to send and the UDP endpoint sends them. The security
rule (FreeSWITCH CVE-2023-51443, which aiortc's own stack also fails): DTLS and SRTP are only
accepted from an address that passed an ICE connectivity check with our credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import pylibsrtp

from voice_server.media.dtls import Certificate, DtlsServer, DtlsState
from voice_server.media.errors import PacketError
from voice_server.media.reception import Reception
from voice_server.media.sdp import Answer
from voice_server.media.srtp import make_sessions
from voice_server.media.stun import (
    StunClass,
    StunMessage,
    build_binding_error,
    build_binding_success,
)
from voice_server.media.tcp_peers import TcpAddress
from voice_server.ratelimit import TokenBucket

log = logging.getLogger(__name__)

Address = tuple[str, int]


class TransportState(Enum):
    NEW = "new"  # offer sent, nothing received
    CONNECTING = "connecting"  # ICE checks passed, DTLS in progress
    CONNECTED = "connected"  # DTLS done, answer verified: media flows
    FAILED = "failed"
    CLOSED = "closed"


@dataclass(slots=True)
class StunResult:
    """What a STUN request did: a reply to send, and whether the address became valid."""

    reply: bytes | None
    newly_valid: bool = False
    error: str | None = None


@dataclass(eq=False, slots=True)
class Transport:
    session_id: str
    ufrag: str
    pwd: str
    certificate: Certificate
    dtls: DtlsServer = field(init=False)
    state: TransportState = TransportState.NEW
    remote_ufrag: str | None = None
    remote_fingerprint: str | None = None
    answered: bool = False
    valid_addrs: set[Address] = field(default_factory=set)
    remote: Address | None = None  # where media goes
    nominated: bool = False
    dtls_addr: Address | None = None
    rx: pylibsrtp.Session | None = None
    tx: pylibsrtp.Session | None = None
    last_check: float = 0.0
    failure: str | None = None
    # audio-level extension id the participant uses (fixed by our offer; kept by answerers)
    level_ext_id: int = 1
    mic_enabled: bool = True
    #: its answer kept audio RED on its listening slots: it gets talkers' RED as sent (the
    #: others get the primary frame alone)
    red: bool = False
    created_at: float = field(default_factory=time.monotonic)
    #: where its decrypted RTP goes: the router member(s) it talks into, bound by the plane
    #: (mediasoup binds a producer to its router); None while it talks into no channel
    sink: Callable[[bytes, int], None] | None = None
    #: what the server receives from its microphone (RFC 3550 statistics for receiver reports)
    reception: Reception = field(default_factory=Reception)
    #: its RTCP rate (the endpoint drops a storm before the SRTP check); made on first use
    rtcp_bucket: TokenBucket | None = None
    #: ICE restart: the credentials before it (still answered until a check with the new ones
    #: nominates a pair), and whether the answer with the peer's new ufrag is still awaited
    previous: tuple[str, str] | None = None
    restarting: bool = False
    #: ICE restarts so far (the offer's candidate priority rises with it: sdp.host_priority)
    generation: int = 0
    #: the highest fraction lost (1/256) its own receiver reports gave for what it hears, and when
    downlink_fraction: int = 0
    downlink_at: float = 0.0

    def __post_init__(self) -> None:
        self.dtls = DtlsServer(self.certificate)

    @property
    def media_ready(self) -> bool:
        return self.state is TransportState.CONNECTED

    @property
    def path(self) -> str:
        """How its media travels, as the server sees it: ``"tcp"`` (ICE-TCP) or ``"udp"``."""
        return "tcp" if type(self.remote) is TcpAddress else "udp"

    # ------------------------------------------------------------------ ICE (lite)
    def on_stun(self, msg: StunMessage, addr: Address, now: float) -> StunResult:
        """Answer a binding request addressed to our ufrag (already looked up by USERNAME)."""
        if msg.message_class is not StunClass.REQUEST:
            return StunResult(None, error="not a request")
        parts = msg.username_parts
        pwd, remote_ufrag = self.pwd, self.remote_ufrag
        old = self.previous
        if old is not None and parts is not None and parts[0] == old[0]:
            pwd = old[1]  # the generation before an ICE restart, until the new one is nominated
        elif self.restarting:
            remote_ufrag = None  # the peer's new ufrag comes with its answer (our pwd checks)
        if not msg.verify_integrity(pwd.encode()):
            return StunResult(
                build_binding_error(msg.transaction_id, 401), error="bad message integrity"
            )
        if msg.fingerprint is not None and not msg.verify_fingerprint():
            return StunResult(None, error="bad fingerprint")
        if parts is not None and remote_ufrag is not None and parts[1] != remote_ufrag:
            return StunResult(
                build_binding_error(msg.transaction_id, 401), error="remote ufrag mismatch"
            )
        if msg.use_candidate and pwd is self.pwd:
            self.previous = None  # the new generation has a nominated pair
        self.last_check = now
        newly = addr not in self.valid_addrs
        if newly:
            self.valid_addrs.add(addr)
            if self.remote is None:
                self.remote = addr
        if msg.use_candidate and (not self.nominated or self.remote != addr):
            self.nominated = True
            self.remote = addr
        if self.state is TransportState.NEW:
            self.state = TransportState.CONNECTING
        reply = build_binding_success(msg.transaction_id, addr, self.pwd.encode())
        return StunResult(reply, newly_valid=newly)

    def restart_ice(self, ufrag: str, pwd: str) -> None:
        """New local ICE credentials for the same transport (DTLS and SRTP are kept): checks
        with the old ones are answered until a new pair is nominated; the peer's new ufrag is
        taken from its answer (:meth:`ice_restarted`)."""
        if self.previous is None:
            self.previous = (self.ufrag, self.pwd)
        self.ufrag, self.pwd = ufrag, pwd
        self.restarting = True
        self.generation += 1

    def ice_restarted(self, remote_ufrag: str) -> None:
        """The answer to the restart offer: the peer's new ufrag."""
        self.remote_ufrag = remote_ufrag
        self.restarting = False

    # ------------------------------------------------------------------ DTLS
    def on_dtls(self, data: bytes, addr: Address) -> list[bytes]:
        """Feed a DTLS datagram from a validated address; return datagrams for ``addr``."""
        if self.state in (TransportState.FAILED, TransportState.CLOSED):
            return []
        if self.dtls_addr is None:
            self.dtls_addr = addr
            if not self.nominated:
                self.remote = addr
        out = self.dtls.feed(data)
        self._after_dtls()
        return out

    def on_dtls_timeout(self) -> list[bytes]:
        out = self.dtls.handle_timeout()
        self._after_dtls()
        return out

    def _after_dtls(self) -> None:
        if self.dtls.state is DtlsState.FAILED:
            self._fail(self.dtls.failure or "DTLS failed")
        elif self.dtls.state is DtlsState.CLOSED and self.state is not TransportState.CLOSED:
            self._fail("peer closed DTLS")
        elif self.dtls.state is DtlsState.CONNECTED and self.rx is None:
            assert self.dtls.profile is not None and self.dtls.keying is not None
            self.rx, self.tx = make_sessions(self.dtls.profile, self.dtls.keying)
            self._maybe_connected()

    # ------------------------------------------------------------------ SDP answer
    def apply_answer(self, answer: Answer) -> None:
        """Take the participant's answer; raise ValueError when it cannot be used."""
        if self.answered:
            raise ValueError("an answer was already applied to this offer")
        self.remote_ufrag = answer.ice_ufrag
        self.remote_fingerprint = answer.fingerprint
        if answer.audio_level_id is not None:
            self.level_ext_id = answer.audio_level_id
        self.mic_enabled = answer.can_talk
        self.red = answer.red_heard
        self.answered = True
        if self.dtls.state is DtlsState.CONNECTED:
            self._maybe_connected()

    def _maybe_connected(self) -> None:
        if not self.answered or self.rx is None or self.state is not TransportState.CONNECTING:
            return
        assert self.remote_fingerprint is not None
        if not self.dtls.verify_fingerprint(self.remote_fingerprint):
            self._fail("peer certificate does not match the fingerprint in the answer")
            return
        self.state = TransportState.CONNECTED

    # ------------------------------------------------------------------ endings
    def _fail(self, reason: str) -> None:
        if self.state not in (TransportState.FAILED, TransportState.CLOSED):
            self.state = TransportState.FAILED
            self.failure = reason
            log.info("transport failed", extra={"session": self.session_id, "reason": reason})

    def close(self) -> list[bytes]:
        """Close: returns a close_notify to send when DTLS was up."""
        out = self.dtls.close() if self.state is not TransportState.CLOSED else []
        self.state = TransportState.CLOSED
        self.rx = self.tx = None
        self.sink = None
        return out


def parse_stun_username(msg: StunMessage) -> str | None:
    """Our ufrag from a request's USERNAME (``ours:theirs``), None when absent."""
    parts = msg.username_parts
    return parts[0] if parts is not None else None


__all__ = ["Address", "PacketError", "StunResult", "Transport", "TransportState"]
