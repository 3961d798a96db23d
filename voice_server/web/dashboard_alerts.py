"""The dashboard's alert pages: the inbox (``/dashboard/alerts``, filters by kind, state and
channel), one alert (``/dashboard/alerts/<id>``: acknowledge, resolve with a note; a keyword
alert shows its utterance with the keyword marked and the clip player — an audited call-log
read) and the keyword lists (``/dashboard/alert-keywords``, admins). The banner and its sound
are ``static/alerts.js`` on every page, fed by ``web.events_ws``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voice_server.alerts.model import ALERT_ID_RE, AlertError, AlertKind
from voice_server.alerts.store import DEPLOYMENT
from voice_server.calllog.localtime import local_text
from voice_server.web.alerts_access import alert_json, may_handle
from voice_server.web.api_alerts import (
    acknowledge,
    find,
    keyword_lists,
    resolve,
    service,
    set_keywords,
)
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.calllog_access import view
from voice_server.web.highlight import highlight
from voice_server.web.pages import PageExit, csrf_of, guard
from voice_server.web.policy import Action, Actor
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]
CsrfField = Annotated[str, Form(alias="csrf", max_length=128)]
Short = Annotated[str, Query(max_length=64)]


def _refusal(request: Request, auth: Auth, status: int) -> PageExit:
    key = {403: "forbidden", 404: "not_found"}.get(status, "error")
    return PageExit(
        render(
            request,
            "error.html",
            actor=auth.actor,
            csrf=csrf_of(auth),
            status_code=status,
            message_key=key,
        )
    )


def _row(request: Request, a: Any) -> dict[str, Any]:
    state = app_state(request)
    item = alert_json(a, state.config.zone)
    item["time"] = local_text(a.raised_ms, state.config.zone)
    return item


@router.get("/dashboard/alerts", response_class=HTMLResponse)
def inbox(
    request: Request,
    auth: AuthDep,
    kind: Short = "",
    state: Short = "open",
    channel: Short = "",
) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    app = app_state(request)
    error = ""
    try:
        items = find(app, actor, kind=kind, status=state, channel=channel, limit=200)
    except AlertError as exc:
        items, error = [], exc.message
    channels = [c for c in app.channels.list() if c.name in actor.supervised]
    return render(
        request,
        "alerts.html",
        actor=actor,
        csrf=csrf_of(auth),
        status_code=400 if error else 200,
        items=[_row(request, a) for a in items],
        form={"kind": kind, "state": state, "channel": channel},
        kinds=[k.value for k in AlertKind],
        channels=channels,
        error=error,
        zone=app.config.display_timezone,
    )


@router.get("/dashboard/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: str, request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    return _detail(request, auth, actor, alert_id)


def _detail(
    request: Request, auth: Auth, actor: Actor, alert_id: str, status: int = 200, error: str = ""
) -> HTMLResponse:
    app = app_state(request)
    try:
        svc = service(app)
    except AlertError:
        raise _refusal(request, auth, 503) from None
    alert = svc.store.get(alert_id) if ALERT_ID_RE.match(alert_id) else None
    if alert is None:
        raise _refusal(request, auth, 404)
    if not may_handle(actor, alert):
        raise _refusal(request, auth, 403)
    utterance: dict[str, Any] | None = None
    if alert.utterance:
        try:
            _, hit = view(request, auth, alert.utterance)  # audited: calllog.view + play
        except HTTPException as exc:
            utterance = {"missing": exc.status_code, "marked": "", "clip_url": None, "id": ""}
        else:
            u = hit.utterance
            utterance = {
                "marked": highlight(u.text, alert.keyword, u.language),
                "clip_url": hit.clip_url,
                "time": local_text(u.start_ms, app.config.zone),
                "id": u.id,
                "missing": 0,
            }
    return render(
        request,
        "alert.html",
        actor=actor,
        csrf=csrf_of(auth),
        status_code=status,
        alert=_row(request, alert),
        utterance=utterance,
        error=error,
        done=request.query_params.get("done") == "1",
        play=request.query_params.get("play") == "1",  # the inbox's one click plays the clip
        zone=app.config.display_timezone,
    )


@router.post("/dashboard/alerts/{alert_id}/acknowledge", response_class=HTMLResponse)
def acknowledge_form(
    alert_id: str, request: Request, auth: AuthDep, csrf_token: CsrfField = ""
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    try:
        acknowledge(request, actor, alert_id[:32])
    except AlertError as exc:
        if exc.status in (403, 404):
            raise _refusal(request, auth, exc.status) from None
        return _detail(request, auth, actor, alert_id[:32], exc.status, exc.message)
    return RedirectResponse(f"/dashboard/alerts/{alert_id[:32]}?done=1", status_code=303)


@router.post("/dashboard/alerts/{alert_id}/resolve", response_class=HTMLResponse)
def resolve_form(
    alert_id: str,
    request: Request,
    auth: AuthDep,
    resolution: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: CsrfField = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    try:
        resolve(request, actor, alert_id[:32], resolution, note)
    except AlertError as exc:
        if exc.status in (403, 404):
            raise _refusal(request, auth, exc.status) from None
        return _detail(request, auth, actor, alert_id[:32], exc.status, exc.message)
    return RedirectResponse(f"/dashboard/alerts/{alert_id[:32]}?done=1", status_code=303)


# ---------------------------------------------------------------------- keyword lists
def _keywords_page(
    request: Request, auth: Auth, actor: Actor, status: int = 200, **extra: Any
) -> HTMLResponse:
    app = app_state(request)
    lists = keyword_lists(app)
    scopes = [(DEPLOYMENT, None, lists["deployment"])] + [
        (c.name, c.display_name, lists["channels"].get(c.name, [])) for c in app.channels.list()
    ]
    context: dict[str, Any] = {
        "error": "",
        "failed_scope": None,
        "typed": "",
        "done": request.query_params.get("done") == "1",
    }
    context.update(extra)
    return render(
        request,
        "alert_keywords.html",
        actor=actor,
        csrf=csrf_of(auth),
        status_code=status,
        scopes=scopes,
        **context,
    )


@router.get("/dashboard/alert-keywords", response_class=HTMLResponse)
def keywords_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    return _keywords_page(request, auth, actor)


@router.post("/dashboard/alert-keywords", response_class=HTMLResponse)
def keywords_form(
    request: Request,
    auth: AuthDep,
    scope: Annotated[str, Form(max_length=64)] = "",
    keywords: Annotated[str, Form(max_length=20_000)] = "",
    csrf_token: CsrfField = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    items = [line for line in keywords.splitlines() if line.strip()]
    try:
        set_keywords(request, actor, scope or None, items)
    except AlertError as exc:
        return _keywords_page(
            request, auth, actor, exc.status, error=exc.message, failed_scope=scope,
            typed=keywords,
        )  # fmt: skip
    return RedirectResponse("/dashboard/alert-keywords?done=1", status_code=303)
