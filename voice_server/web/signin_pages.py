"""``/signin``: the server-rendered sign-in page (password, or a one-time code) and the language
switch. Staff land in the phone app afterwards; a QR code opens ``/signin#code=…``, which the
page hands on to the phone app (``/#code=…``, redeemed there) when the app is served."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from voice_server.audit.chain import Result
from voice_server.web import security
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.signin_flow import Outcome, code_login, password_login
from voice_server.web.static import find_web_dir
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]
NextPath = Annotated[str, Query(max_length=200)]


def safe_next(value: str | None) -> str | None:
    """Only same-site paths: ``/x``, never ``//host`` or ``/\\host`` (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 33 or c == "\\" for c in value) or len(value) > 200:
        return None
    return value


def _page(
    request: Request, auth: Auth, *, next_path: str, error: str = "", status: int = 200
) -> HTMLResponse:
    state = app_state(request)
    probe = Response()
    token = (
        auth.session.csrf
        if auth.session
        else security.pre_session_token(state.config, request, probe)
    )
    response = render(
        request,
        "signin.html",
        actor=auth.actor,
        csrf=token,
        next=next_path,
        error=error,
        no_accounts=not state.accounts.directory.accounts_mode(),
        app_served=find_web_dir(state.config.web_dir) is not None,
        status_code=status,
    )
    for key, value in probe.raw_headers:
        if key == b"set-cookie":
            response.raw_headers.append((key, value))
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, auth: AuthDep, next: NextPath = "") -> HTMLResponse:
    return _page(request, auth, next_path=safe_next(next) or "")


def _after(
    request: Request, auth: Auth, outcome: Outcome, next_path: str, response: Response
) -> Response:
    if outcome.session is None:
        error = "locked" if outcome.result is Result.LOCKED else "signin_failed"
        status = 429 if outcome.result is Result.LOCKED else 401
        return _page(request, auth, next_path=next_path, error=error, status=status)
    user = app_state(request).accounts.users.get(outcome.user_name or "")
    # staff land in the phone app (it signs in to channels with this session); the others on
    # the dashboard
    default = "/dashboard" if user is not None and user.role.value != "staff" else "/"
    redirect = RedirectResponse(safe_next(next_path) or default, status_code=303)
    for key, value in response.raw_headers:
        if key == b"set-cookie":
            redirect.raw_headers.append((key, value))
    return redirect


@router.post("/signin")
def signin_password(
    request: Request,
    auth: AuthDep,
    name: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
    next: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    csrf(request, auth, csrf_token)
    holder = Response()
    outcome = password_login(app_state(request), request, holder, name, password)
    return _after(request, auth, outcome, next, holder)


@router.post("/signin/code")
def signin_code(
    request: Request,
    auth: AuthDep,
    code: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
    next: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    csrf(request, auth, csrf_token)
    holder = Response()
    outcome = code_login(app_state(request), request, holder, code)
    error = "code_failed" if outcome.result is Result.FAILED else ""
    if error:
        return _page(request, auth, next_path=next, error=error, status=401)
    return _after(request, auth, outcome, next, holder)


@router.get("/lang")
def switch_language(
    request: Request,
    to: Annotated[str, Query(pattern=r"^(ja|en)$")] = "ja",
    next: NextPath = "/signin",
) -> Response:
    """The language switch: a preference cookie (not a credential), then back."""
    response = RedirectResponse(safe_next(next) or "/signin", status_code=303)
    response.set_cookie(
        security.LANG_COOKIE, to, max_age=365 * 86400, path="/", samesite="lax", httponly=True
    )
    return response
