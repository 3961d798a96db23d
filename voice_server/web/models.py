"""Request and response bodies of the REST API (pydantic at the edge)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from voice_server.accounts.users import User
from voice_server.store.channels import Channel
from voice_server.talk.priority import DEFAULT_DUCK_DB, duck_db, listeners, overrides

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # channel names; user names too (lower-cased)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Strict):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class CodeIn(Strict):
    code: str = Field(min_length=1, max_length=32)


class CodeCreateIn(Strict):
    user: str = Field(pattern=NAME)
    ttl_seconds: int | None = Field(default=None, ge=30, le=86400)


class CodeOut(BaseModel):
    code: str
    user: str
    expires_at: float
    signin_url: str


class JoinTokenIn(Strict):
    """One channel (a phone) or several (a console: ``channels``, at most 8); not both."""

    channel: str | None = Field(default=None, pattern=NAME)
    channels: list[Annotated[str, Field(pattern=NAME)]] | None = Field(
        default=None, min_length=1, max_length=8
    )


class JoinTokenOut(BaseModel):
    token: str
    channel: str  # the first (the one to join)
    channels: list[str]
    expires_at: int
    expires_in: int  # seconds (the phone's clock may be off: renew by this)


class ChannelRef(BaseModel):
    name: str
    display_name: str


class Me(BaseModel):
    name: str
    display_name: str
    role: str
    channels: list[ChannelRef]  # may talk in
    supervises: list[ChannelRef]  # may review (call log, live view)


class SessionInfo(BaseModel):
    authenticated: bool
    csrf_token: str
    via: str | None = None  # session | token
    expires_at: float | None = None
    # seconds the web session has left (by the server's clock) and how long before its end the
    # phone app warns (``session_warning_seconds``)
    expires_in: float | None = None
    warning_seconds: int | None = None
    user: Me | None = None
    # not signed in although a session cookie came: user_disabled | session_revoked |
    # session_expired (for a clear message in the phone app)
    ended: str | None = None


class UserIn(Strict):
    name: str = Field(pattern=NAME)
    role: str = Field(pattern=r"^(staff|supervisor|admin)$")
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    password: str | None = Field(default=None, min_length=8, max_length=256)
    channels: list[str] = Field(default_factory=list, max_length=100)


class PasswordIn(Strict):
    password: str = Field(min_length=8, max_length=256)


class UserOut(BaseModel):
    name: str
    display_name: str
    role: str
    enabled: bool
    has_password: bool
    member_of: list[str]
    supervises: list[str]
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            name=user.name,
            display_name=user.display_name,
            role=user.role.value,
            enabled=user.enabled,
            has_password=user.has_password,
            member_of=list(user.member_of),
            supervises=list(user.supervises),
            created_at=user.created_at,
            updated_at=user.updated_at,
        )


class ChannelIn(Strict):
    name: str = Field(pattern=NAME)
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    supervisors: list[str] = Field(default_factory=list, max_length=100)
    members: list[str] = Field(default_factory=list, max_length=1000)


class ChannelPatch(Strict):
    display_name: str | None = Field(default=None, min_length=1, max_length=100)
    retention_days: int | None = Field(default=None, ge=1, le=36500)  # null: keep for ever
    legal_hold: bool | None = None


class TalkRulesIn(Strict):
    """A channel's talk rules: member levels (1-2; 1 removes an override), talk rights
    (true: listen only) and the duck level (docs/signaling.md, "Priority")."""

    priority: dict[str, int] = Field(default_factory=dict, max_length=1000)
    listeners: dict[str, bool] = Field(default_factory=dict, max_length=1000)
    duck_db: int | None = Field(default=None, ge=-40, le=0)


class ChannelOut(BaseModel):
    name: str
    display_name: str
    created_at: str
    retention_days: int | None
    legal_hold: bool
    supervisors: list[str]
    members: list[str]
    priority: dict[str, int] = Field(default_factory=dict)  # members raised above their role
    listeners: list[str] = Field(default_factory=list)  # members who may only listen
    duck_db: int = DEFAULT_DUCK_DB

    @classmethod
    def of(cls, channel: Channel, supervisors: list[str], members: list[str]) -> ChannelOut:
        return cls(
            name=channel.name,
            display_name=channel.display_name,
            created_at=channel.created_at,
            retention_days=channel.retention_days,
            legal_hold=channel.legal_hold,
            supervisors=supervisors,
            members=members,
            priority={u: int(v) for u, v in overrides(channel.settings).items()},
            listeners=sorted(listeners(channel.settings)),
            duck_db=duck_db(channel.settings),
        )


class AuditPage(BaseModel):
    entries: list[dict[str, Any]]
    next_before: int | None
