"""Emergencies over REST: ``POST /api/v1/emergencies`` raises one in a channel the caller may
join (a listen-only member too; the raiser's live session in that channel, if any, holds its
level-3 window), ``POST /api/v1/emergencies/<id>/cancel`` cancels one: the raiser their own,
a supervisor of its channel (or an admin) anyone's; staff cancelling someone else's get 403.
Errors are ``{"error", "message"}``: ``emergency_open`` (409) while one's own is open."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from voice_server.alerts.emergency import CANCEL_NOTE
from voice_server.alerts.model import ALERT_ID_RE, AlertError, AlertKind, Resolution
from voice_server.audit.chain import Result
from voice_server.identity.tokens import Role
from voice_server.signaling.messages import Location
from voice_server.web.alerts_access import alert_json, may_handle
from voice_server.web.api_alerts import error, handler, json_body, service, signed_in
from voice_server.web.auth import Auth, app_state, authenticate, client_address
from voice_server.web.policy import Action, Actor, decide

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["alerts"])
AuthDep = Annotated[Auth, Depends(authenticate)]


def _audit_refusal(request: Request, actor: Actor, action: str, target: str, code: str) -> None:
    app_state(request).accounts.audit.record(
        actor, action, target, {"error": code}, Result.DENIED, address=client_address(request)
    )


@router.post("/emergencies", status_code=201)
async def raise_emergency(request: Request, auth: AuthDep) -> Any:
    state = app_state(request)
    try:
        actor = signed_in(request, auth, write=True)
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("channel"), str):
            raise AlertError("bad_request", 'send {"channel": name, "location"?: {...}}')
        channel = body["channel"][:64]
        location = None
        if body.get("location") is not None:
            try:
                location = Location.model_validate(body["location"]).model_dump(exclude_none=True)
            except ValidationError:
                raise AlertError("bad_location", "location is {lat, lon, accuracy?}") from None
        if not decide(actor, Action.JOIN, channel=channel):
            await asyncio.to_thread(
                _audit_refusal, request, actor, "alert.raise", f"channel:{channel}", "forbidden"
            )
            raise AlertError("forbidden", "not a channel you may join", 403)
        emergencies = state.emergencies
        if emergencies is None:
            raise AlertError("unavailable", "alerts are off", 503)
        alert = await asyncio.to_thread(
            emergencies.raise_now,
            actor.sub,
            actor.name,
            channel,
            location,
            "api",
            client_address(request),
        )
        if alert is None:
            raise AlertError("emergency_open", "your emergency is still open", 409)
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    desk = state.hub.emergency
    held = False
    if desk is not None:
        held = desk.hold_user(actor.sub, channel, alert.id)
        desk.announce_raised(alert.id, channel, actor.sub)
    return {**alert_json(alert, state.config.zone), "held": held}


def _cancel(request: Request, actor: Actor, alert_id: str) -> Any:
    state = app_state(request)
    svc = service(state)
    alert = svc.store.get(alert_id) if ALERT_ID_RE.match(alert_id) else None
    if alert is None or alert.kind is not AlertKind.EMERGENCY:
        raise AlertError("not_found", "no such emergency", 404)
    own = alert.subject == actor.sub
    if not own and (actor.role is Role.STAFF or not may_handle(actor, alert)):
        _audit_refusal(request, actor, "alert.resolve", f"alert:{alert_id}", "forbidden")
        raise AlertError("forbidden", "only the raiser or a supervisor may cancel it", 403)
    note = CANCEL_NOTE if own else f"cancelled by {actor.name}"
    return svc.resolve(alert_id, handler(request, actor), Resolution.FALSE_ALARM, note)


@router.post("/emergencies/{alert_id}/cancel")
async def cancel_emergency(alert_id: str, request: Request, auth: AuthDep) -> Any:
    try:
        actor = signed_in(request, auth, write=True)
        alert = await asyncio.to_thread(_cancel, request, actor, alert_id[:32])
    except AlertError as exc:
        return error(exc.status, exc.code, exc.message)
    return alert_json(alert, app_state(request).config.zone)
