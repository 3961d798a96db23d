"""ICE for a simulated participant facing an ICE-lite server, sans I/O (RFC 8445, RFC 7675).

The participant is the controlling agent with a single candidate pair (its socket → the
server's one host candidate): every check carries USE-CANDIDATE (aggressive nomination). Checks
are sent until one succeeds, then one every few seconds as consent freshness (RFC 7675); a
response counts only if it answers a pending transaction and carries MESSAGE-INTEGRITY made
with the server's password.
"""

from __future__ import annotations

import secrets

from voice_server.media import stun
from voice_server.media.errors import PacketError

__all__ = ["IceChecks"]

PRIORITY = 1853824767  # a host candidate's priority, RFC 8445 5.1.2.1
MAX_PENDING = 64


class IceChecks:
    """Connectivity and consent checks of one participant."""

    def __init__(self, server_ufrag: str, server_pwd: str, own_ufrag: str) -> None:
        self.username = f"{server_ufrag}:{own_ufrag}"
        self._password = server_pwd.encode()
        self._tie_breaker = secrets.randbits(64)
        self._pending: list[bytes] = []
        #: True once a check succeeded (the pair is nominated)
        self.connected = False
        #: successful consent checks after the first
        self.consent_replies = 0

    def request(self) -> bytes:
        """A new binding request to send to the server's candidate."""
        tid = stun.new_transaction_id()
        self._pending.append(tid)
        if len(self._pending) > MAX_PENDING:
            del self._pending[0]
        return stun.build_binding_request(
            username=self.username,
            password=self._password,
            priority=PRIORITY,
            tie_breaker=self._tie_breaker,
            controlling=True,
            use_candidate=True,
            transaction_id=tid,
        )

    def on_response(self, data: bytes) -> bool:
        """Process a STUN datagram; True if it is the first success (ICE just connected)."""
        try:
            msg = stun.parse(data)
        except PacketError:
            return False
        if (
            msg.transaction_id not in self._pending
            or msg.message_class is not stun.StunClass.SUCCESS
            or not msg.verify_integrity(self._password)
        ):
            return False
        self._pending.remove(msg.transaction_id)
        if self.connected:
            self.consent_replies += 1
            return False
        self.connected = True
        return True
