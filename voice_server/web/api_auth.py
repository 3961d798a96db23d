"""``/api/v1/auth``: sign-in (password or one-time code), sessions, sign-in codes, join tokens.

The phone web client calls these (docs/security.md, "Sign-in API"); the dashboard's forms use
the same flows through ``web.signin_pages``.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from voice_server.accounts.codes import code_id, display
from voice_server.audit.chain import Result
from voice_server.identity.tokens import Audience, issue_token
from voice_server.state import AppState
from voice_server.web import security
from voice_server.web.auth import (
    Auth,
    app_state,
    authenticate,
    client_address,
    csrf,
    session_end,
    unauthorized,
    user_record,
)
from voice_server.web.common import require, target_user
from voice_server.web.models import (
    ChannelRef,
    CodeCreateIn,
    CodeIn,
    CodeOut,
    JoinTokenIn,
    JoinTokenOut,
    LoginIn,
    Me,
    SessionInfo,
)
from voice_server.web.policy import Action, Actor, actor_from_record
from voice_server.web.signin_flow import Outcome, code_login, logout, password_login

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
AuthDep = Annotated[Auth, Depends(authenticate)]


def base_url(state: AppState, request: Request) -> str:
    if state.config.public_url:
        return state.config.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def me(state: AppState, actor: Actor) -> Me:
    known = {c.name: c.display_name for c in state.channels.list()}

    def refs(scope_names: list[str]) -> list[ChannelRef]:
        return [ChannelRef(name=n, display_name=known[n]) for n in scope_names]

    return Me(
        name=actor.sub,
        display_name=actor.name,
        role=actor.role_name,
        channels=refs([n for n in known if n in actor.joinable]),
        supervises=refs([n for n in known if n in actor.supervised])
        if actor.role_name != "staff"
        else [],
    )


def session_info(
    state: AppState, auth: Auth, csrf_token: str, ended: str | None = None
) -> SessionInfo:
    if auth.actor is None:
        return SessionInfo(authenticated=False, csrf_token=csrf_token, ended=ended)
    session = auth.session
    return SessionInfo(
        authenticated=True,
        csrf_token=csrf_token,
        via=auth.actor.via,
        expires_at=session.expires_at if session else None,
        expires_in=max(0.0, session.expires_at - time.time()) if session else None,
        warning_seconds=state.config.session_warning_seconds if session else None,
        user=me(state, auth.actor),
    )


def _signed_in(state: AppState, request: Request, outcome: Outcome) -> SessionInfo:
    if outcome.result is Result.LOCKED:
        raise HTTPException(
            status_code=429,
            detail={"code": "locked", "message": "too many attempts; try again later"},
            headers={"Retry-After": str(math.ceil(outcome.retry_after))},
        )
    if outcome.session is None:
        raise HTTPException(
            status_code=401, detail={"code": "signin_failed", "message": "sign-in failed"}
        )
    return session_info(state, authenticate_after(state, outcome), outcome.session.csrf)


def authenticate_after(state: AppState, outcome: Outcome) -> Auth:
    record = user_record(state, outcome.user_name or "")
    actor = actor_from_record(record) if record is not None else None
    return Auth(actor, None, outcome.session)


@router.get("/session", response_model=SessionInfo)
def get_session(request: Request, response: Response, auth: AuthDep) -> SessionInfo:
    """Who is signed in, and the CSRF token to send as ``X-CSRF-Token`` (before sign-in: the
    pre-session token that ``login`` and ``code`` need)."""
    state = app_state(request)
    if auth.session is not None:
        return session_info(state, auth, auth.session.csrf)
    if auth.actor is not None:
        return session_info(state, auth, "")
    pre = security.pre_session_token(state.config, request, response)
    return session_info(state, auth, pre, session_end(state, request))


@router.post("/login", response_model=SessionInfo)
def post_login(body: LoginIn, request: Request, response: Response, auth: AuthDep) -> SessionInfo:
    """Name and password → a session cookie. 401 when wrong, 429 (Retry-After) when locked."""
    csrf(request, auth)
    state = app_state(request)
    return _signed_in(
        state, request, password_login(state, request, response, body.name, body.password)
    )


@router.post("/code", response_model=SessionInfo)
def post_code(body: CodeIn, request: Request, response: Response, auth: AuthDep) -> SessionInfo:
    """A one-time sign-in code (from a QR code) → a session cookie."""
    csrf(request, auth)
    state = app_state(request)
    return _signed_in(state, request, code_login(state, request, response, body.code))


@router.post("/logout", status_code=204)
def post_logout(request: Request, response: Response, auth: AuthDep) -> None:
    """End this session (revoked server-side) and clear the cookie."""
    csrf(request, auth)
    state = app_state(request)
    logout(state, request, response, auth.session_id)
    if auth.actor is not None and auth.session is not None:
        state.accounts.audit.record(
            auth.actor, "auth.logout", f"user:{auth.actor.sub}", address=client_address(request)
        )


@router.post("/codes", response_model=CodeOut, status_code=201)
def post_codes(body: CodeCreateIn, request: Request, auth: AuthDep) -> CodeOut:
    """Create a one-time sign-in code for a staff account (admins: any staff; supervisors:
    staff of the channels they supervise)."""
    csrf(request, auth)
    state = app_state(request)
    name = body.user.strip().lower()
    target = target_user(state, name)
    actor = require(
        request, auth, Action.SIGNIN_CODE_CREATE, target=target, audit_target=f"user:{name[:64]}"
    )
    ttl = body.ttl_seconds or state.config.signin_code_ttl_seconds
    now = time.time()
    accounts = state.accounts
    with state.db.transaction() as conn:
        code = accounts.codes.create(conn, name, actor.sub, ttl, now)
        accounts.audit.record(
            actor,
            "auth.code_create",
            f"user:{name}",
            {"code_id": code_id(code), "ttl_seconds": ttl},
            address=client_address(request),
            conn=conn,
        )
    return CodeOut(
        code=display(code),
        user=name,
        expires_at=now + ttl,
        signin_url=f"{base_url(state, request)}/signin#code={code}",
    )


@router.post("/join-token", response_model=JoinTokenOut)
def post_join_token(body: JoinTokenIn, request: Request, auth: AuthDep) -> JoinTokenOut:
    """A short-lived ``aud=join`` token for one channel the caller may join, or several
    (``channels``: a console joins the first and monitors the others); send it in the WebSocket
    ``join``; ask again before it expires and send it as ``refresh``."""
    csrf(request, auth)
    state = app_state(request)
    if auth.actor is None:
        ended = session_end(state, request)
        raise unauthorized("sign in first", ended or "unauthorized")
    if (body.channel is None) == (body.channels is None):
        raise HTTPException(
            422, detail={"code": "invalid_field", "message": "give channel or channels, not both"}
        )
    channels = list(dict.fromkeys(body.channels or [body.channel or ""]))
    actor = auth.actor
    for name in channels:
        try:
            actor = require(request, auth, Action.JOIN, channel=name)
        except HTTPException as exc:
            raise HTTPException(
                exc.status_code,
                detail={"code": "channel_forbidden", "message": f"not a member of {name}"},
            ) from None
    for name in channels:
        if state.channels.get(name) is None:
            raise HTTPException(
                404, detail={"code": "channel_not_found", "message": f"no channel {name}"}
            )
    now = int(time.time())
    ttl = state.config.join_token_ttl_seconds
    if auth.session is not None:
        ttl = min(ttl, int(auth.session.expires_at - now))
    if ttl < 1:
        raise unauthorized("the session has expired", "session_expired")
    token = issue_token(
        state.key,
        sub=actor.sub,
        name=actor.name[:128],
        channels=channels,
        role=actor.role,
        aud=Audience.JOIN,
        ttl_seconds=ttl,
        now=now,
    )
    return JoinTokenOut(
        token=token, channel=channels[0], channels=channels, expires_at=now + ttl, expires_in=ttl
    )
