"""Who is calling: a web session cookie, an ``aud=api`` bearer token, or nobody.

:func:`authenticate` runs in a worker thread (it reads the database) and returns an :class:`Auth`;
routes then ask ``web.policy.decide``. The directory's view is read on every call: a disabled
user's session or token stops working at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from starlette.requests import HTTPConnection

from voice_server.accounts.websessions import WebSession
from voice_server.identity.principal import DirectoryRefusal, UserRecord
from voice_server.identity.tokens import Audience, TokenError, verify_token
from voice_server.state import AppState
from voice_server.web import security
from voice_server.web.policy import Actor, actor_from_record, actor_from_token

MAX_BEARER = 8192


@dataclass(frozen=True, slots=True)
class Auth:
    actor: Actor | None
    session_id: str | None = None  # the raw cookie value of a live session
    session: WebSession | None = None
    pre_csrf: str | None = None  # the pre-session cookie (before sign-in)

    @property
    def csrf_expected(self) -> str | None:
        return self.session.csrf if self.session is not None else self.pre_csrf


def app_state(request: HTTPConnection) -> AppState:
    state: AppState = request.app.state.voice
    return state


def client_address(request: HTTPConnection) -> str:
    return request.client.host if request.client else ""


def unauthorized(message: str, code: str = "unauthorized") -> HTTPException:
    return HTTPException(status_code=401, detail={"code": code, "message": message})


def user_record(state: AppState, name: str) -> UserRecord | None:
    user = state.accounts.users.get(name)
    if user is None:
        return None
    return UserRecord(
        sub=user.name,
        enabled=user.enabled,
        role=user.role,
        channels=user.joinable,
        display_name=user.display_name,
        supervised=user.supervises,
    )


def _bearer(state: AppState, token: str) -> Actor:
    if len(token) > MAX_BEARER:
        raise unauthorized("token is too large", "token_invalid")
    try:
        claims = verify_token(state.key, token, audience=Audience.API, now=int(time.time()))
    except TokenError as exc:
        raise unauthorized(exc.message, f"token_{exc.reason}") from None
    try:
        record = state.accounts.directory.lookup(claims.sub)
    except DirectoryRefusal as exc:
        raise unauthorized(exc.message, f"user_{exc.reason}") from None
    if record is not None and not record.enabled:
        raise unauthorized("user is disabled", "user_disabled")
    return actor_from_token(claims, record)


def authenticate(request: HTTPConnection) -> Auth:
    """Resolve the caller (blocking: FastAPI runs sync dependencies in a worker thread; the
    live view's WebSocket calls it through ``asyncio.to_thread``)."""
    state = app_state(request)
    header = request.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        return Auth(_bearer(state, header[7:].strip()))
    config = state.config
    pre = security.read_cookie(config, request, security.PRE_COOKIE)
    raw = security.read_cookie(config, request, security.SESSION_COOKIE)
    if raw:
        session = state.accounts.sessions.resolve(raw, time.time())
        if session is not None:
            record = user_record(state, session.user_name)
            if record is not None and record.enabled:
                return Auth(actor_from_record(record), raw, session, pre)
    return Auth(None, pre_csrf=pre)


def session_end(state: AppState, request: HTTPConnection) -> str | None:
    """Why the session cookie this request carries no longer signs anyone in, for a clear message
    in the phone app: ``user_disabled``, ``session_revoked`` (signed out elsewhere, password
    reset) or ``session_expired``; None without a cookie or for an unknown one. Only the holder
    of the cookie learns it."""
    raw = security.read_cookie(state.config, request, security.SESSION_COOKIE)
    if not raw:
        return None
    ended = state.accounts.sessions.ended(raw, time.time())
    user_name = ended[0] if ended else None
    if user_name is None:
        live = state.accounts.sessions.resolve(raw, time.time())
        if live is None:
            return None
        user_name = live.user_name
    user = state.accounts.users.get(user_name)
    if user is None or not user.enabled:
        return "user_disabled"
    if ended is None:
        return None
    return "session_revoked" if ended[1] == "revoked" else "session_expired"


def csrf(request: Request, auth: Auth, form_value: str | None = None) -> None:
    """The CSRF check of docs/security.md for a state-changing request."""
    if request.method not in security.STATE_CHANGING:
        return
    if auth.actor is not None and auth.actor.via == "token":
        return  # bearer tokens are not ambient credentials
    presented = form_value or request.headers.get(security.CSRF_HEADER)
    security.check_csrf(auth.csrf_expected, presented)
