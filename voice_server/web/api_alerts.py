"""Alerts over REST (``/api/v1/alerts``): list with filters, one alert, acknowledge, resolve;
keyword lists (``/api/v1/alert-keywords``, admins). Errors are ``{"error", "message"}`` with a
stable code; refusals are audited. The dashboard's forms and banner share these functions."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from voice_server.alerts.keywords import parse_list
from voice_server.alerts.model import (
    ALERT_ID_RE,
    Alert,
    AlertError,
    AlertKind,
    AlertState,
    clean_note,
    parse_resolution,
)
from voice_server.alerts.service import AlertService, Handler
from voice_server.alerts.store import DEPLOYMENT
from voice_server.audit.chain import Result
from voice_server.calllog.model import parse_time
from voice_server.identity.tokens import Role
from voice_server.state import AppState
from voice_server.web.alerts_access import alert_json, may_handle, scope
from voice_server.web.auth import Auth, app_state, authenticate, client_address, csrf
from voice_server.web.policy import Actor

__all__ = [
    "acknowledge",
    "error",
    "find",
    "handler",
    "json_body",
    "keyword_lists",
    "resolve",
    "router",
    "service",
    "set_keywords",
    "signed_in",
]

router = APIRouter(prefix="/api/v1", tags=["alerts"])
AuthDep = Annotated[Auth, Depends(authenticate)]
MAX_BODY = 64 * 1024
STATES = ("raised", "acknowledged", "resolved", "open", "all")


def error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def service(state: AppState) -> AlertService:
    svc = state.alerts
    if svc is None:
        raise AlertError("unavailable", "alerts are off", 503)
    return svc


def handler(request: Request, actor: Actor) -> Handler:
    return Handler(actor.sub, actor.name, actor.role_name, client_address(request))


def find(
    state: AppState,
    actor: Actor,
    *,
    kind: str = "",
    status: str = "open",
    channel: str = "",
    since: str = "",
    until: str = "",
    limit: int = 100,
) -> list[Alert]:
    """The alerts ``actor`` may see, filtered; AlertError for a bad filter."""
    filters: dict[str, Any] = {"limit": limit}
    if kind:
        try:
            filters["kind"] = AlertKind(kind)
        except ValueError:
            raise AlertError("bad_filter", "kind is emergency, keyword or transcription") from None
    if status not in STATES:
        raise AlertError("bad_filter", "state is " + ", ".join(STATES))
    if status == "open":
        filters["open_only"] = True
    elif status != "all":
        filters["state"] = AlertState(status)
    try:
        if since:
            filters["since_ms"] = parse_time(since)
        if until:
            filters["until_ms"] = parse_time(until)
    except ValueError:
        raise AlertError("bad_filter", "since/until are ISO 8601 times with a zone") from None
    found = scope(actor, **filters)
    if found is None:
        return []
    alerts = service(state).store.find(found)
    return [a for a in alerts if not channel or a.channel == channel]


def _refuse(request: Request, actor: Actor, action: str, alert_id: str, exc: AlertError) -> None:
    app_state(request).accounts.audit.record(
        actor,
        action,
        f"alert:{alert_id}",
        {"error": exc.code},
        Result.DENIED if exc.status in (401, 403) else Result.FAILED,
        address=client_address(request),
    )


def _visible(request: Request, actor: Actor, alert_id: str, action: str) -> Alert:
    state = app_state(request)
    alert = service(state).store.get(alert_id) if ALERT_ID_RE.match(alert_id) else None
    if alert is None:
        raise AlertError("not_found", "no such alert", 404)
    decision = may_handle(actor, alert)
    if not decision:
        exc = AlertError("forbidden", decision.reason, 403)
        _refuse(request, actor, action, alert_id, exc)
        raise exc
    return alert


def acknowledge(request: Request, actor: Actor, alert_id: str) -> Alert:
    _visible(request, actor, alert_id, "alert.acknowledge")
    return service(app_state(request)).acknowledge(alert_id, handler(request, actor))


def resolve(request: Request, actor: Actor, alert_id: str, resolution: Any, note: Any) -> Alert:
    try:
        how = parse_resolution(resolution)
        text = clean_note(note if note is not None else "")
    except AlertError as exc:
        _refuse(request, actor, "alert.resolve", alert_id[:32], exc)
        raise
    _visible(request, actor, alert_id, "alert.resolve")
    return service(app_state(request)).resolve(alert_id, handler(request, actor), how, text)


def keyword_lists(state: AppState) -> dict[str, Any]:
    lists = service(state).store.keywords()
    return {
        "deployment": [k.text for k in lists.get(DEPLOYMENT, [])],
        "channels": {c: [k.text for k in ks] for c, ks in lists.items() if c != DEPLOYMENT},
    }


def set_keywords(request: Request, actor: Actor, channel: Any, items: Any) -> list[str]:
    """Replace one list (``channel`` None: the deployment's), audited in the same commit."""
    state = app_state(request)
    try:
        if actor.role is not Role.ADMIN:
            raise AlertError("forbidden", "admins only", 403)
        if channel is not None and (not isinstance(channel, str) or len(channel) > 64):
            raise AlertError("bad_channel", "channel must be a channel name or null")
        if channel is not None and state.channels.get(channel) is None:
            raise AlertError("not_found", "no such channel", 404)
        keywords = parse_list(items)
    except AlertError as exc:
        state.accounts.audit.record(
            actor,
            "alert.keywords",
            f"channel:{channel}" if isinstance(channel, str) else "deployment",
            {"error": exc.code},
            Result.DENIED if exc.status == 403 else Result.FAILED,
            address=client_address(request),
        )
        raise
    svc = service(state)
    scope_name = channel if channel is not None else DEPLOYMENT
    with state.db.transaction() as conn:
        svc.store.set_keywords(conn, scope_name, keywords)
        state.accounts.audit.record(
            actor,
            "alert.keywords",
            f"channel:{channel}" if channel is not None else "deployment",
            {"count": len(keywords)},
            address=client_address(request),
            conn=conn,
        )
    return [k.text for k in keywords]


# ---------------------------------------------------------------------- routes
async def json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise AlertError("too_large", "the body is too large", 413)
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise AlertError("bad_request", "the body is not JSON") from None


def signed_in(request: Request, auth: Auth, *, write: bool) -> Actor:
    if auth.actor is None:
        raise AlertError("unauthorized", "sign in first", 401)
    if write:
        try:
            csrf(request, auth)
        except HTTPException:
            raise AlertError("csrf", "missing or wrong CSRF token", 403) from None
    return auth.actor


@router.get("/alerts")
def list_alerts(
    request: Request,
    auth: AuthDep,
    kind: Annotated[str, Query(max_length=16)] = "",
    state: Annotated[str, Query(max_length=16)] = "open",
    channel: Annotated[str, Query(max_length=64)] = "",
    since: Annotated[str, Query(max_length=40)] = "",
    until: Annotated[str, Query(max_length=40)] = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    try:
        actor = signed_in(request, auth, write=False)
        app = app_state(request)
        items = find(
            app, actor, kind=kind, status=state, channel=channel, since=since, until=until,
            limit=limit,
        )  # fmt: skip
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return {"items": [alert_json(a, app.config.zone) for a in items]}


@router.get("/alerts/{alert_id}")
def get_alert(alert_id: str, request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=False)
        alert = _visible(request, actor, alert_id[:32], "alert.view")
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return alert_json(alert, app_state(request).config.zone)


@router.post("/alerts/{alert_id}/acknowledge")
async def post_acknowledge(alert_id: str, request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=True)
        alert = await asyncio.to_thread(acknowledge, request, actor, alert_id[:32])
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return alert_json(alert, app_state(request).config.zone)


@router.post("/alerts/{alert_id}/resolve")
async def post_resolve(alert_id: str, request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=True)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise AlertError("bad_request", 'send {"resolution", "note"}')
        alert = await asyncio.to_thread(
            resolve, request, actor, alert_id[:32], body.get("resolution"), body.get("note", "")
        )
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return alert_json(alert, app_state(request).config.zone)


@router.get("/alert-keywords")
def get_keywords(request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=False)
        if actor.role is not Role.ADMIN:
            raise AlertError("forbidden", "admins only", 403)
        return keyword_lists(app_state(request))
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)


@router.put("/alert-keywords")
async def put_keywords(request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=True)
        body = await json_body(request)
        if not isinstance(body, dict) or "keywords" not in body:
            raise AlertError("bad_request", 'send {"channel": null | name, "keywords": [...]}')
        kept = await asyncio.to_thread(
            set_keywords, request, actor, body.get("channel"), body["keywords"]
        )
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return {"channel": body.get("channel"), "keywords": kept}
