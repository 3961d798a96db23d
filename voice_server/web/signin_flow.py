"""Signing in with a password or a one-time code: throttled, audited, a session on success.

Shared by the JSON API (``/api/v1/auth/...``) and the server-rendered ``/signin`` page. Both
paths refuse with the same answer whether the name is unknown, disabled or the password wrong,
and take the same time (an unknown name still costs one argon2 verification).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request, Response

from voice_server.accounts import validate
from voice_server.accounts.codes import code_id
from voice_server.accounts.passwords import needs_rehash, verify_password
from voice_server.accounts.websessions import WebSession
from voice_server.audit.chain import Result, clip
from voice_server.state import AppState
from voice_server.web import security
from voice_server.web.auth import client_address


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    user_name: str | None = None
    session: WebSession | None = None
    retry_after: float = 0.0


def _start(
    state: AppState, request: Request, response: Response, user_name: str, via: str
) -> WebSession:
    # a shared phone or tablet: whoever signed in on this browser before is signed out
    previous = security.read_cookie(state.config, request, security.SESSION_COOKIE)
    if previous:
        state.accounts.sessions.revoke(previous)
    raw, session = state.accounts.sessions.create(
        user_name,
        via=via,
        address=client_address(request),
        ttl=state.config.session_ttl_seconds,
        now=time.time(),
    )
    config = state.config
    security.set_cookie(
        config, request, response, security.SESSION_COOKIE, raw, config.session_ttl_seconds
    )
    return session


def password_login(
    state: AppState, request: Request, response: Response, name: str, password: str
) -> Outcome:
    accounts, address = state.accounts, client_address(request)
    try:
        user_name = validate.user_name(name)
    except validate.AccountError:
        user_name = clip(name.strip().lower())[:64]
    keys = [f"user:{user_name}", f"addr:{address}"]
    now = time.time()
    wait = accounts.throttle.wait_seconds(keys, now)
    target = f"user:{user_name}"
    if wait > 0:
        accounts.audit.record(user_name, "auth.login", target, {}, Result.LOCKED, address=address)
        return Outcome(Result.LOCKED, retry_after=wait)
    stored = accounts.users.password_hash(user_name)
    if not verify_password(stored, password[: validate.PASSWORD_MAX]):
        locked = accounts.throttle.failed(keys, now)
        accounts.audit.record(
            user_name, "auth.login", target, {"locked": locked}, Result.FAILED, address=address
        )
        return Outcome(Result.FAILED)
    accounts.throttle.succeeded(keys[0])
    if stored is not None and needs_rehash(stored):
        accounts.service.rehash(user_name, password)
    session = _start(state, request, response, user_name, "password")
    accounts.audit.record(user_name, "auth.login", target, {}, Result.OK, address=address)
    return Outcome(Result.OK, user_name, session)


def code_login(state: AppState, request: Request, response: Response, code: str) -> Outcome:
    accounts, address = state.accounts, client_address(request)
    keys = [f"addr:{address}"]
    now = time.time()
    wait = accounts.throttle.wait_seconds(keys, now)
    if wait > 0:
        accounts.audit.record("anonymous", "auth.code", "", {}, Result.LOCKED, address=address)
        return Outcome(Result.LOCKED, retry_after=wait)
    user_name = accounts.codes.redeem(code[:32], now)
    user = accounts.users.get(user_name) if user_name else None
    if user is None or not user.enabled:
        locked = accounts.throttle.failed(keys, now)
        accounts.audit.record(
            "anonymous", "auth.code", "", {"locked": locked}, Result.FAILED, address=address
        )
        return Outcome(Result.FAILED)
    session = _start(state, request, response, user.name, "code")
    accounts.audit.record(
        user.name,
        "auth.code",
        f"user:{user.name}",
        {"code_id": code_id(code)},
        Result.OK,
        address=address,
    )
    return Outcome(Result.OK, user.name, session)


def logout(state: AppState, request: Request, response: Response, session_id: str | None) -> None:
    if session_id:
        state.accounts.sessions.revoke(session_id)
    security.clear_cookie(state.config, request, response, security.SESSION_COOKIE)
