"""Signaling sessions and their registry: the pure state machine behind the WebSocket endpoint.

A session is one participant on one device in one channel, keyed by ``(sub, device_id)``:

    attached --(socket drops)--> detached --(grace elapses)--> closed
        ^                            |
        +------(join with id)--------+        a new join of the same key replaces the old one

The registry does no I/O and keeps no timers: the caller passes ``now`` and asks
:meth:`SessionRegistry.expired` which detached sessions have outlived the grace period.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from voice_server.identity.principal import Principal


class SessionState(Enum):
    ATTACHED = "attached"
    DETACHED = "detached"
    CLOSED = "closed"


@dataclass(eq=False, slots=True)
class Session:
    id: str
    principal: Principal
    device_id: str
    channel: str
    created_at: float
    state: SessionState = SessionState.ATTACHED
    detached_at: float | None = None
    token_expires_at: int = 0
    talking_slot: int | None = None
    level: int = 1  # talk priority in its channel (talk.priority: role and channel overrides)
    listener: bool = False  # listen only in its channel: its route sends nowhere
    # owner-specific attachments (the connection, the media transport) live outside
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.principal.sub, self.device_id)

    @property
    def sub(self) -> str:
        return self.principal.sub

    @property
    def name(self) -> str:
        return self.principal.name


@dataclass(frozen=True, slots=True)
class Opened:
    session: Session
    resumed: bool
    replaced: Session | None  # the previous session of the same key, now closed


class SessionRegistry:
    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self._by_id: dict[str, Session] = {}
        self._by_key: dict[tuple[str, str], Session] = {}
        self._by_channel: dict[str, dict[str, Session]] = {}

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def get(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def by_key(self, key: tuple[str, str]) -> Session | None:
        return self._by_key.get(key)

    def in_channel(self, channel: str) -> list[Session]:
        return list(self._by_channel.get(channel, {}).values())

    def channels(self) -> list[str]:
        return list(self._by_channel)

    def count_by_state(self) -> dict[SessionState, int]:
        counts = dict.fromkeys(SessionState, 0)
        for s in self._by_id.values():
            counts[s.state] += 1
        return counts

    # ------------------------------------------------------------------ transitions
    def open(
        self,
        principal: Principal,
        device_id: str,
        channel: str,
        now: float,
        resume_id: str | None = None,
    ) -> Opened:
        """Join: resume the same key's live session when ``resume_id`` names it and the channel
        is the same, else replace whatever session that key had."""
        key = (principal.sub, device_id)
        old = self._by_key.get(key)
        if old is not None and resume_id is not None and old.id == resume_id:
            if old.channel == channel and old.state is not SessionState.CLOSED:
                old.state = SessionState.ATTACHED
                old.detached_at = None
                old.principal = principal
                old.token_expires_at = principal.expires_at
                return Opened(old, resumed=True, replaced=None)
        if old is not None:
            self.close(old)
        session = Session(
            id=secrets.token_urlsafe(12),
            principal=principal,
            device_id=device_id,
            channel=channel,
            created_at=now,
            token_expires_at=principal.expires_at,
        )
        self._by_id[session.id] = session
        self._by_key[key] = session
        self._by_channel.setdefault(channel, {})[session.id] = session
        return Opened(session, resumed=False, replaced=old)

    def detach(self, session: Session, now: float) -> None:
        if session.state is SessionState.ATTACHED:
            session.state = SessionState.DETACHED
            session.detached_at = now

    def close(self, session: Session) -> bool:
        """Remove a session; return False when it was already closed."""
        if session.state is SessionState.CLOSED:
            return False
        session.state = SessionState.CLOSED
        self._by_id.pop(session.id, None)
        if self._by_key.get(session.key) is session:
            del self._by_key[session.key]
        members = self._by_channel.get(session.channel)
        if members is not None:
            members.pop(session.id, None)
            if not members:
                del self._by_channel[session.channel]
        return True

    def expired(self, now: float) -> list[Session]:
        """Detached sessions whose grace period has elapsed (not yet closed)."""
        return [
            s
            for s in self._by_id.values()
            if s.state is SessionState.DETACHED
            and s.detached_at is not None
            and now - s.detached_at >= self.grace_seconds
        ]
