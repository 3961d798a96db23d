"""``/api/v1/users`` and ``/api/v1/channels``: administration over the REST API (admins only).

Each change goes through ``accounts.service`` (validated, applied and audited in one
transaction); refusals by the policy are audited as ``denied``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from voice_server.accounts.users import Assignment
from voice_server.state import AppState
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.common import caller, mapped_errors, require
from voice_server.web.models import (
    NAME,
    ChannelIn,
    ChannelOut,
    ChannelPatch,
    PasswordIn,
    TalkRulesIn,
    UserIn,
    UserOut,
)
from voice_server.web.policy import Action

router = APIRouter(prefix="/api/v1", tags=["admin"])
AuthDep = Annotated[Auth, Depends(authenticate)]
UserName = Annotated[str, Path(pattern=NAME)]
ChannelName = Annotated[str, Path(pattern=NAME)]
Kind = Annotated[str, Path(pattern=r"^(supervisors|members)$")]


def _user_out(state: AppState, name: str) -> UserOut:
    user = state.accounts.users.get(name.strip().lower())
    if user is None:
        raise HTTPException(404, detail={"code": "not_found", "message": "no such user"})
    return UserOut.of(user)


def _channel_out(state: AppState, name: str) -> ChannelOut:
    channel = state.channels.get(name)
    if channel is None:
        raise HTTPException(404, detail={"code": "not_found", "message": "no such channel"})
    assigned = state.accounts.users.assignments(name)
    return ChannelOut.of(channel, assigned[Assignment.SUPERVISOR], assigned[Assignment.MEMBER])


# ---------------------------------------------------------------------- users
@router.get("/users", response_model=list[UserOut])
def list_users(request: Request, auth: AuthDep) -> list[UserOut]:
    require(request, auth, Action.USERS_VIEW)
    return [UserOut.of(u) for u in app_state(request).accounts.users.all()]


@router.get("/users/{name}", response_model=UserOut)
def get_user(name: UserName, request: Request, auth: AuthDep) -> UserOut:
    require(request, auth, Action.USERS_VIEW)
    return _user_out(app_state(request), name)


@router.post("/users", response_model=UserOut, status_code=201)
def add_user(body: UserIn, request: Request, auth: AuthDep) -> UserOut:
    csrf(request, auth)
    actor = require(request, auth, Action.USERS_MANAGE, audit_target=f"user:{body.name[:64]}")
    with mapped_errors():
        user = app_state(request).accounts.service.add_user(
            caller(request, actor),
            body.name,
            body.role,
            display_name=body.display_name,
            password=body.password,
            channels=body.channels,
        )
    return UserOut.of(user)


def _set_enabled(request: Request, auth: Auth, name: str, enabled: bool) -> UserOut:
    csrf(request, auth)
    actor = require(request, auth, Action.USERS_MANAGE, audit_target=f"user:{name}")
    with mapped_errors():
        user = app_state(request).accounts.service.set_enabled(
            caller(request, actor), name.strip().lower(), enabled
        )
    return UserOut.of(user)


@router.post("/users/{name}/disable", response_model=UserOut)
def disable_user(name: UserName, request: Request, auth: AuthDep) -> UserOut:
    """Disable: sign-in refused, web sessions revoked, live voice sessions end within 2 s."""
    return _set_enabled(request, auth, name, False)


@router.post("/users/{name}/enable", response_model=UserOut)
def enable_user(name: UserName, request: Request, auth: AuthDep) -> UserOut:
    return _set_enabled(request, auth, name, True)


@router.post("/users/{name}/password", status_code=204)
def reset_password(name: UserName, body: PasswordIn, request: Request, auth: AuthDep) -> None:
    """Set a new password (the user's web sessions are revoked)."""
    csrf(request, auth)
    actor = require(request, auth, Action.USERS_MANAGE, audit_target=f"user:{name}")
    with mapped_errors():
        app_state(request).accounts.service.set_password(
            caller(request, actor), name.strip().lower(), body.password
        )


# ---------------------------------------------------------------------- channels
@router.get("/channels", response_model=list[ChannelOut])
def list_channels(request: Request, auth: AuthDep) -> list[ChannelOut]:
    require(request, auth, Action.CHANNELS_VIEW)
    state = app_state(request)
    return [_channel_out(state, c.name) for c in state.channels.list()]


@router.get("/channels/{name}", response_model=ChannelOut)
def get_channel(name: ChannelName, request: Request, auth: AuthDep) -> ChannelOut:
    require(request, auth, Action.CHANNELS_VIEW)
    return _channel_out(app_state(request), name)


@router.post("/channels", response_model=ChannelOut, status_code=201)
def add_channel(body: ChannelIn, request: Request, auth: AuthDep) -> ChannelOut:
    csrf(request, auth)
    actor = require(request, auth, Action.CHANNELS_MANAGE, audit_target=f"channel:{body.name}")
    state = app_state(request)
    with mapped_errors():
        state.accounts.service.add_channel(
            caller(request, actor),
            body.name,
            display_name=body.display_name,
            supervisors=body.supervisors,
            members=body.members,
        )
    return _channel_out(state, body.name)


@router.patch("/channels/{name}", response_model=ChannelOut)
def patch_channel(
    name: ChannelName, body: ChannelPatch, request: Request, auth: AuthDep
) -> ChannelOut:
    """Change the display name, retention (days; null keeps for ever) and legal hold."""
    csrf(request, auth)
    given = body.model_fields_set
    action = Action.CHANNELS_MANAGE
    if given & {"retention_days", "legal_hold"}:
        action = Action.RETENTION_MANAGE
    actor = require(request, auth, action, audit_target=f"channel:{name}")
    state = app_state(request)
    with mapped_errors():
        state.accounts.service.update_channel(
            caller(request, actor),
            name,
            display_name=body.display_name,
            retention_days=body.retention_days if "retention_days" in given else "keep",
            legal_hold=body.legal_hold,
        )
    return _channel_out(state, name)


@router.patch("/channels/{name}/talk", response_model=ChannelOut)
def patch_talk_rules(
    name: ChannelName, body: TalkRulesIn, request: Request, auth: AuthDep
) -> ChannelOut:
    """Member levels (1-2), talk rights (true: listen only) and the duck level of a channel;
    every user named must be a member (or supervisor) of it."""
    csrf(request, auth)
    actor = require(request, auth, Action.ASSIGNMENTS_MANAGE, audit_target=f"channel:{name}")
    state = app_state(request)
    with mapped_errors():
        state.accounts.service.set_talk_rules(
            caller(request, actor),
            name,
            priority=body.priority,
            listeners=body.listeners,
            duck_db=body.duck_db,
        )
    return _channel_out(state, name)


def _assignment(kind: str) -> Assignment:
    return Assignment.SUPERVISOR if kind == "supervisors" else Assignment.MEMBER


@router.put("/channels/{name}/{kind}/{user}", response_model=ChannelOut)
def assign(
    name: ChannelName, kind: Kind, user: UserName, request: Request, auth: AuthDep
) -> ChannelOut:
    """Assign a user to a channel as supervisor or member (idempotent)."""
    csrf(request, auth)
    actor = require(request, auth, Action.ASSIGNMENTS_MANAGE, audit_target=f"channel:{name}")
    state = app_state(request)
    with mapped_errors():
        state.accounts.service.assign(caller(request, actor), name, user, _assignment(kind))
    return _channel_out(state, name)


@router.delete("/channels/{name}/{kind}/{user}", response_model=ChannelOut)
def unassign(
    name: ChannelName, kind: Kind, user: UserName, request: Request, auth: AuthDep
) -> ChannelOut:
    csrf(request, auth)
    actor = require(request, auth, Action.ASSIGNMENTS_MANAGE, audit_target=f"channel:{name}")
    state = app_state(request)
    with mapped_errors():
        state.accounts.service.unassign(caller(request, actor), name, user, _assignment(kind))
    return _channel_out(state, name)
