"""Helpers every web route shares: permission checks that audit refusals, error mapping."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from voice_server.accounts.service import Caller
from voice_server.accounts.validate import AccountError
from voice_server.audit.chain import Result
from voice_server.state import AppState
from voice_server.store.channels import ChannelError
from voice_server.web.auth import Auth, app_state, client_address, unauthorized
from voice_server.web.policy import Action, Actor, TargetUser, decide

_STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "forbidden": 403}


def forbidden(message: str) -> HTTPException:
    return HTTPException(status_code=403, detail={"code": "forbidden", "message": message})


def require(
    request: Request,
    auth: Auth,
    action: Action,
    *,
    channel: str | None = None,
    target: TargetUser | None = None,
    audit_target: str = "",
) -> Actor:
    """The actor when ``decide`` allows; else 401 (nobody) or 403, the refusal audited."""
    actor = auth.actor
    if actor is None:
        raise unauthorized("sign in first")
    decision = decide(actor, action, channel=channel, target=target)
    if not decision:
        app_state(request).accounts.audit.record(
            actor,
            action.value,
            audit_target or (f"channel:{channel}" if channel else ""),
            {"reason": decision.reason},
            Result.DENIED,
            address=client_address(request),
        )
        raise forbidden(decision.reason)
    return actor


def caller(request: Request, actor: Actor) -> Caller:
    return Caller(actor.sub, actor.role_name, client_address(request))


def target_user(state: AppState, name: str) -> TargetUser | None:
    user = state.accounts.users.get(name)
    if user is None:
        return None
    return TargetUser(user.name, user.role, user.enabled, frozenset(user.member_of))


def error_status(exc: AccountError | ChannelError) -> int:
    if isinstance(exc, AccountError):
        return _STATUS.get(exc.kind, 400)
    text = str(exc)
    if "already exists" in text:
        return 409
    if text.startswith("no channel"):
        return 404
    return 400


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn refused account and channel operations into 4xx answers."""
    try:
        yield
    except (AccountError, ChannelError) as exc:
        raise HTTPException(
            status_code=error_status(exc), detail={"code": "refused", "message": str(exc)}
        ) from None


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """422 without echoing the input (a password that is too long stays out of the answer)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)
