"""``/dashboard``: the home page, sign-out, sign-in codes (QR) and the audit log pages.

Administration pages live in ``web.dashboard_admin``, the call log's (search, transcript,
export, live view) in ``web.dashboard_calllog``; each is guarded by its ``policy.Action`` and
listed in ``templating.NAV``.
"""

from __future__ import annotations

import time
from typing import Annotated

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from voice_server.accounts.codes import code_id, display
from voice_server.identity.tokens import Role
from voice_server.web import (
    dashboard_admin,
    dashboard_announce,
    dashboard_calllog,
    dashboard_console,
    dashboard_network,
)
from voice_server.web.api_audit import export_response, page
from voice_server.web.api_auth import base_url
from voice_server.web.auth import Auth, app_state, authenticate, client_address, csrf
from voice_server.web.common import target_user
from voice_server.web.pages import csrf_of, guard
from voice_server.web.policy import Action, TargetUser, decide
from voice_server.web.signin_flow import logout
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
router.include_router(dashboard_admin.router)
router.include_router(dashboard_calllog.router)
router.include_router(dashboard_announce.router)
router.include_router(dashboard_network.router)
router.include_router(dashboard_console.router)
AuthDep = Annotated[Auth, Depends(authenticate)]
CsrfField = Annotated[str, Form(alias="csrf", max_length=128)]


@router.get("/dashboard", response_class=HTMLResponse)
def home(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    state = app_state(request)
    supervised = [c for c in state.channels.list() if c.name in actor.supervised]
    return render(request, "home.html", actor=actor, csrf=csrf_of(auth), supervised=supervised)


@router.get("/dashboard/transcription")
def transcription_status(request: Request, auth: AuthDep) -> dict[str, str]:
    """The transcription state for the banner every dashboard page shows (polled)."""
    guard(request, auth, Action.DASHBOARD)
    verdict = app_state(request).transcription.verdict()
    return {"state": verdict.state.value, "reason": verdict.reason}


@router.post("/signout")
def sign_out(request: Request, auth: AuthDep, csrf_token: CsrfField = "") -> Response:
    csrf(request, auth, csrf_token)
    state = app_state(request)
    response = RedirectResponse("/signin", status_code=303)
    logout(state, request, response, auth.session_id)
    if auth.actor is not None and auth.session is not None:
        state.accounts.audit.record(
            auth.actor, "auth.logout", f"user:{auth.actor.sub}", address=client_address(request)
        )
    return response


# ---------------------------------------------------------------------- sign-in codes
def _code_targets(request: Request, auth: Auth) -> list[tuple[str, str]]:
    state = app_state(request)
    out = []
    for user in state.accounts.users.all():
        target = TargetUser(user.name, user.role, user.enabled, frozenset(user.member_of))
        if user.role is Role.STAFF and decide(auth.actor, Action.SIGNIN_CODE_CREATE, target=target):
            out.append((user.name, user.display_name))
    return out


@router.get("/dashboard/codes", response_class=HTMLResponse)
def codes_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    return render(
        request,
        "codes.html",
        actor=actor,
        csrf=csrf_of(auth),
        targets=_code_targets(request, auth),
        created=None,
    )


def qr_svg(url: str) -> Markup:
    """An SVG QR code (no PIL): our own markup from a URL we built, safe to inline."""
    image = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    svg = image.to_string(encoding="unicode")
    return Markup(svg[svg.index("<svg") :])


@router.post("/dashboard/codes", response_class=HTMLResponse)
def create_code(
    request: Request,
    auth: AuthDep,
    user: Annotated[str, Form(max_length=64)] = "",
    csrf_token: CsrfField = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    state = app_state(request)
    name = user.strip().lower()
    actor = guard(
        request,
        auth,
        Action.SIGNIN_CODE_CREATE,
        target=target_user(state, name),
        audit_target=f"user:{name}",
    )
    ttl = state.config.signin_code_ttl_seconds
    now = time.time()
    with state.db.transaction() as conn:
        code = state.accounts.codes.create(conn, name, actor.sub, ttl, now)
        state.accounts.audit.record(
            actor,
            "auth.code_create",
            f"user:{name}",
            {"code_id": code_id(code), "ttl_seconds": ttl},
            address=client_address(request),
            conn=conn,
        )
    url = f"{base_url(state, request)}/signin#code={code}"
    target = state.accounts.users.get(name)
    return render(
        request,
        "codes.html",
        actor=actor,
        csrf=csrf_of(auth),
        targets=_code_targets(request, auth),
        created={
            "code": display(code),
            "user": target.display_name if target else name,
            "url": url,
            "qr": qr_svg(url),
            "expires": time.strftime("%H:%M", time.localtime(now + ttl)),
        },
    )


# ---------------------------------------------------------------------- audit log
@router.get("/dashboard/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    auth: AuthDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    actor = guard(request, auth, Action.AUDIT_VIEW)
    entries, next_before = page(app_state(request), before, 100)
    return render(
        request,
        "audit.html",
        actor=actor,
        csrf=csrf_of(auth),
        entries=entries,
        next_before=next_before,
    )


@router.get("/dashboard/audit/export")
def audit_export(
    request: Request,
    auth: AuthDep,
    format: Annotated[str, Query(pattern=r"^(csv|json)$")] = "csv",
) -> Response:
    actor = guard(request, auth, Action.AUDIT_EXPORT, audit_target="audit_log")
    return export_response(app_state(request), request, actor, format)
