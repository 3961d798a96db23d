"""Administration pages: users (add, disable/enable, reset password) and channels (add, display
name, retention and legal hold, supervisors and members). Admins only; every change goes through
``accounts.service`` (audited), exactly like the REST API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import HTMLResponse

from voice_server.accounts.users import Assignment
from voice_server.accounts.validate import AccountError
from voice_server.state import AppState
from voice_server.store.channels import ChannelError
from voice_server.talk.priority import duck_db, level_for, listeners, overrides
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.common import caller, error_status
from voice_server.web.pages import csrf_of, done, guard
from voice_server.web.policy import Action, Actor
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]
CsrfField = Annotated[str, Form(alias="csrf", max_length=128)]
Text = Annotated[str, Form(max_length=256)]


def _assigned(state: AppState, channel: str) -> dict[str, list[str]]:
    return {k.value: v for k, v in state.accounts.users.assignments(channel).items()}


def _users_page(
    request: Request, auth: Auth, actor: Actor, *, error: str = "", status: int = 200
) -> HTMLResponse:
    state = app_state(request)
    return render(
        request,
        "users.html",
        actor=actor,
        csrf=csrf_of(auth),
        users=state.accounts.users.all(),
        channels=state.channels.list(),
        error=error,
        done=request.query_params.get("done") == "1",
        status_code=status,
    )


def _channels_page(
    request: Request, auth: Auth, actor: Actor, *, error: str = "", status: int = 200
) -> HTMLResponse:
    state = app_state(request)
    rows = [(c, _assigned(state, c.name)) for c in state.channels.list()]
    return render(
        request,
        "channels.html",
        actor=actor,
        csrf=csrf_of(auth),
        rows=rows,
        error=error,
        done=request.query_params.get("done") == "1",
        status_code=status,
    )


def _channel_page(
    request: Request, auth: Auth, actor: Actor, name: str, *, error: str = "", status: int = 200
) -> HTMLResponse:
    state = app_state(request)
    channel = state.channels.get(name)
    if channel is None:
        return render(
            request,
            "error.html",
            actor=actor,
            csrf=csrf_of(auth),
            status_code=404,
            message_key="not_found",
        )
    users = state.accounts.users.all()
    return render(
        request,
        "channel.html",
        actor=actor,
        csrf=csrf_of(auth),
        channel=channel,
        assigned=_assigned(state, name),
        users=users,
        talk={
            "priority": {u: int(v) for u, v in overrides(channel.settings).items()},
            "role_level": {u.name: int(level_for(u.role.value, u.name)) for u in users},
            "listeners": listeners(channel.settings),
            "duck_db": duck_db(channel.settings),
        },
        error=error,
        done=request.query_params.get("done") == "1",
        status_code=status,
    )


def _apply(
    change: Callable[[], Any], on_error: Callable[[str, int], HTMLResponse], back: str
) -> Response:
    try:
        change()
    except (AccountError, ChannelError) as exc:
        return on_error(str(exc), error_status(exc))
    return done(back)


def _svc(request: Request) -> tuple[AppState, Any]:
    state = app_state(request)
    return state, state.accounts.service


# ---------------------------------------------------------------------- users
@router.get("/dashboard/users", response_class=HTMLResponse)
def users_page(request: Request, auth: AuthDep) -> HTMLResponse:
    return _users_page(request, auth, guard(request, auth, Action.USERS_VIEW))


@router.post("/dashboard/users")
def users_add(
    request: Request,
    auth: AuthDep,
    csrf_token: CsrfField = "",
    name: Text = "",
    display_name: Text = "",
    role: Text = "staff",
    password: Text = "",
    channels: Annotated[list[str] | None, Form(max_length=200)] = None,
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.USERS_MANAGE, audit_target=f"user:{name[:64]}")
    _, svc = _svc(request)
    return _apply(
        lambda: svc.add_user(
            caller(request, actor),
            name,
            role,
            display_name=display_name or None,
            password=password or None,
            channels=channels or [],
        ),
        lambda e, s: _users_page(request, auth, actor, error=e, status=s),
        "/dashboard/users",
    )


@router.post("/dashboard/users/{name}/{op}")
def users_change(
    name: str,
    op: str,
    request: Request,
    auth: AuthDep,
    csrf_token: CsrfField = "",
    password: Text = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.USERS_MANAGE, audit_target=f"user:{name[:64]}")
    _, svc = _svc(request)
    by = caller(request, actor)
    actions: dict[str, Callable[[], Any]] = {
        "disable": lambda: svc.set_enabled(by, name, False),
        "enable": lambda: svc.set_enabled(by, name, True),
        "password": lambda: svc.set_password(by, name, password),
    }
    change = actions.get(op)
    if change is None:
        return _users_page(request, auth, actor, error="unknown operation", status=404)
    return _apply(
        change,
        lambda e, s: _users_page(request, auth, actor, error=e, status=s),
        "/dashboard/users",
    )


# ---------------------------------------------------------------------- channels
@router.get("/dashboard/channels", response_class=HTMLResponse)
def channels_page(request: Request, auth: AuthDep) -> HTMLResponse:
    return _channels_page(request, auth, guard(request, auth, Action.CHANNELS_VIEW))


@router.post("/dashboard/channels")
def channels_add(
    request: Request,
    auth: AuthDep,
    csrf_token: CsrfField = "",
    name: Text = "",
    display_name: Text = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE, audit_target=f"channel:{name[:64]}")
    _, svc = _svc(request)
    return _apply(
        lambda: svc.add_channel(caller(request, actor), name, display_name=display_name or None),
        lambda e, s: _channels_page(request, auth, actor, error=e, status=s),
        "/dashboard/channels",
    )


@router.get("/dashboard/channels/{name}", response_class=HTMLResponse)
def channel_page(name: str, request: Request, auth: AuthDep) -> HTMLResponse:
    return _channel_page(request, auth, guard(request, auth, Action.CHANNELS_VIEW), name)


@router.post("/dashboard/channels/{name}")
def channel_update(
    name: str,
    request: Request,
    auth: AuthDep,
    csrf_token: CsrfField = "",
    display_name: Text = "",
    retention_days: Annotated[str, Form(max_length=8)] = "",
    legal_hold: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.RETENTION_MANAGE, audit_target=f"channel:{name[:64]}")
    _, svc = _svc(request)

    def change() -> Any:
        text = retention_days.strip()
        if text and not text.isdigit():
            raise ChannelError("retention must be a number of days (or empty for ever)")
        return svc.update_channel(
            caller(request, actor),
            name,
            display_name=display_name or None,
            retention_days=int(text) if text else None,
            legal_hold=legal_hold == "on",
        )

    return _apply(
        change,
        lambda e, s: _channel_page(request, auth, actor, name, error=e, status=s),
        f"/dashboard/channels/{name}",
    )


@router.post("/dashboard/channels/{name}/{op}")
def channel_assignment(
    name: str,
    op: str,
    request: Request,
    auth: AuthDep,
    csrf_token: CsrfField = "",
    user: Text = "",
    kind: Text = "member",
    level: Text = "",
    right: Text = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.ASSIGNMENTS_MANAGE, audit_target=f"channel:{name[:64]}")
    _, svc = _svc(request)
    which = Assignment.SUPERVISOR if kind == "supervisor" else Assignment.MEMBER
    by = caller(request, actor)
    actions: dict[str, Callable[[], Any]] = {
        "assign": lambda: svc.assign(by, name, user, which),
        "unassign": lambda: svc.unassign(by, name, user, which),
        "talk": lambda: svc.set_talk_rules(
            by,
            name,
            priority={user: int(level) if level.isdigit() else 0},
            listeners={user: right == "listener"},
        ),
    }
    change = actions.get(op)
    if change is None:
        return _channel_page(request, auth, actor, name, error="unknown operation", status=404)
    return _apply(
        change,
        lambda e, s: _channel_page(request, auth, actor, name, error=e, status=s),
        f"/dashboard/channels/{name}",
    )
