"""Who may do what: the access table of docs/security.md as code [pure].

Every route asks :func:`decide` (or :func:`channels_for`) before acting; anything not listed here
is denied. The call-log actions (search, view, play, export, live) are already in the table so
the routes that come with the call log only call :func:`decide` with them.

An :class:`Actor` is built once per request from the directory's view of the user (a web
session) or from an ``aud=api`` token narrowed by that view (:func:`actor_from_token`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voice_server.identity.principal import UserRecord
from voice_server.identity.tokens import ALL_CHANNELS, Claims, Role


class Action(StrEnum):
    # voice
    JOIN = "join"  # talk in a channel (a WebSocket join, a join token)
    # sign-in codes for shared devices (target: the staff user)
    SIGNIN_CODE_CREATE = "signin_code.create"
    # the dashboard itself
    DASHBOARD = "dashboard"
    # administration
    USERS_VIEW = "users.view"
    USERS_MANAGE = "users.manage"
    CHANNELS_VIEW = "channels.view"
    CHANNELS_MANAGE = "channels.manage"
    ASSIGNMENTS_MANAGE = "assignments.manage"
    RETENTION_MANAGE = "retention.manage"
    AUDIT_VIEW = "audit.view"
    AUDIT_EXPORT = "audit.export"
    NETWORK_VIEW = "network.view"  # every participant's reported media path and quality
    # the call log (routes come later; per channel)
    SEARCH = "calllog.search"
    VIEW = "calllog.view"
    PLAY = "calllog.play"
    EXPORT = "calllog.export"
    LIVE = "calllog.live"
    # members replay the last 24 h of their channel (no one else's direct talks)
    REPLAY = "calllog.replay"
    # spoken announcements into a channel (supervisors; admins where assigned)
    ANNOUNCE = "announce"


CALL_LOG_ACTIONS = frozenset({Action.SEARCH, Action.VIEW, Action.PLAY, Action.EXPORT, Action.LIVE})
ADMIN_ACTIONS = frozenset(
    {
        Action.USERS_VIEW,
        Action.USERS_MANAGE,
        Action.CHANNELS_VIEW,
        Action.CHANNELS_MANAGE,
        Action.ASSIGNMENTS_MANAGE,
        Action.RETENTION_MANAGE,
        Action.AUDIT_VIEW,
        Action.AUDIT_EXPORT,
        Action.NETWORK_VIEW,
    }
)


@dataclass(frozen=True, slots=True)
class Scope:
    """A set of channel names, or every channel (only from a token in token-only mode)."""

    names: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def of(cls, channels: tuple[str, ...] | list[str] | frozenset[str]) -> Scope:
        if ALL_CHANNELS in channels:
            return cls(frozenset(), True)
        return cls(frozenset(channels))

    def __contains__(self, channel: object) -> bool:
        return self.everything or channel in self.names

    def narrow(self, other: Scope) -> Scope:
        if self.everything:
            return other
        if other.everything:
            return self
        return Scope(self.names & other.names)


@dataclass(frozen=True, slots=True)
class Actor:
    sub: str
    name: str
    role: Role
    joinable: Scope  # channels the actor may talk in
    supervised: Scope  # channels whose call log and live view the actor may use
    via: str  # session | token

    @property
    def role_name(self) -> str:
        return self.role.value


@dataclass(frozen=True, slots=True)
class TargetUser:
    """The user an action is about (sign-in codes): their role, enabled flag and channels."""

    name: str
    role: Role
    enabled: bool
    member_of: frozenset[str]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def _deny(reason: str) -> Decision:
    return Decision(False, reason)


def actor_from_record(record: UserRecord, via: str = "session") -> Actor:
    """The directory's full view of a signed-in user."""
    return Actor(
        sub=record.sub,
        name=record.display_name or record.sub,
        role=record.role,
        joinable=Scope.of(record.channels),
        supervised=Scope.of(record.supervised),
        via=via,
    )


def actor_from_token(claims: Claims, record: UserRecord | None) -> Actor:
    """An ``aud=api`` token narrowed by the directory (lower role, fewer channels). With no
    account (token-only mode) the token alone: a supervisor or admin token supervises its
    channels. The caller has already refused disabled and unknown users."""
    token_scope = Scope.of(claims.channels)
    if record is None:
        supervised = token_scope if claims.role.rank >= Role.SUPERVISOR.rank else Scope()
        return Actor(claims.sub, claims.name, claims.role, token_scope, supervised, "token")
    role = claims.role if claims.role.rank <= record.role.rank else record.role
    return Actor(
        sub=record.sub,
        name=record.display_name or claims.name,
        role=role,
        joinable=Scope.of(record.channels).narrow(token_scope),
        supervised=Scope.of(record.supervised).narrow(token_scope),
        via="token",
    )


def decide(
    actor: Actor | None,
    action: Action,
    *,
    channel: str | None = None,
    target: TargetUser | None = None,
) -> Decision:
    """May ``actor`` do ``action`` (on ``channel`` / for ``target``)? Unlisted: denied."""
    if actor is None:
        return _deny("sign in first")
    if action is Action.JOIN:
        if channel is not None and channel in actor.joinable:
            return ALLOW
        return _deny("not a channel you may join")
    if action in CALL_LOG_ACTIONS:
        if actor.role is Role.STAFF:
            return _deny("staff have no access to the call log")
        if channel is not None and channel in actor.supervised:
            return ALLOW
        return _deny("not a channel assigned to you")
    if action is Action.REPLAY:
        if channel is not None and channel in actor.joinable:
            return ALLOW
        return _deny("not a channel you are in")
    if action is Action.ANNOUNCE:
        if actor.role is Role.STAFF:
            return _deny("announcements are for supervisors")
        if channel is not None and channel in actor.supervised:
            return ALLOW
        return _deny("not a channel you supervise")
    if action is Action.DASHBOARD:
        return ALLOW if actor.role is not Role.STAFF else _deny("the dashboard is for supervisors")
    if action in ADMIN_ACTIONS:
        return ALLOW if actor.role is Role.ADMIN else _deny("admins only")
    if action is Action.SIGNIN_CODE_CREATE:
        return _decide_code(actor, target)
    return _deny("not allowed")


def _decide_code(actor: Actor, target: TargetUser | None) -> Decision:
    if target is None or not target.enabled:
        return _deny("no such enabled user")
    if target.role is not Role.STAFF:
        return _deny("sign-in codes are for staff accounts")
    if actor.role is Role.ADMIN:
        return ALLOW
    if actor.role is Role.SUPERVISOR and any(c in actor.supervised for c in target.member_of):
        return ALLOW
    return _deny("not a member of a channel you supervise")


def may_any(actor: Actor | None, action: Action) -> bool:
    """May ``actor`` do ``action`` somewhere: on some channel for the per-channel call-log
    actions (what the navigation shows), else as :func:`decide` says."""
    if action not in CALL_LOG_ACTIONS and action is not Action.ANNOUNCE:
        return bool(decide(actor, action))
    if actor is None or actor.role is Role.STAFF:
        return False
    return actor.supervised.everything or bool(actor.supervised.names)


def channels_for(actor: Actor | None, action: Action, known: list[str]) -> list[str]:
    """Of the ``known`` channels, those ``actor`` may ``action`` (e.g. the channels a search
    without a channel filter covers)."""
    return [c for c in known if decide(actor, action, channel=c)]
