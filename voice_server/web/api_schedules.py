"""Scheduled announcements over REST (created with ``POST /api/v1/announcements`` and a
``schedule``): ``GET /api/v1/announcements/schedules`` (those reaching a channel one
supervises), ``GET``/``PATCH``/``DELETE /api/v1/announcements/schedules/<id>`` (show, edit,
cancel; only for whoever supervises all its channels). Errors are ``{"error", "message"}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from voice_server.announce.request import AnnounceError
from voice_server.web.announce_schedule import (
    cancel_scheduled,
    json_body,
    schedule_json,
    update_scheduled,
    visible_channels,
)
from voice_server.web.auth import Auth, app_state, authenticate, csrf

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/announcements/schedules", tags=["announcements"])
AuthDep = Annotated[Auth, Depends(authenticate)]
IdParam = Annotated[str, PathParam(max_length=19)]


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


@router.get("")
def list_schedules(request: Request, auth: AuthDep) -> Any:
    if auth.actor is None:
        return _error(401, "unauthorized", "sign in first")
    state = app_state(request)
    visible = visible_channels(state, auth.actor)
    items = state.schedules.all() if state.schedules is not None and visible else []
    return {
        "items": [
            schedule_json(state, s, visible)
            for s in items
            if any(c in visible for c in s.request.channels or ())
        ]
    }


@router.get("/{schedule_id}")
def get_schedule(schedule_id: IdParam, request: Request, auth: AuthDep) -> Any:
    if auth.actor is None:
        return _error(401, "unauthorized", "sign in first")
    state = app_state(request)
    visible = visible_channels(state, auth.actor)
    found = state.schedules.get(schedule_id) if state.schedules is not None else None
    if found is None or not any(c in visible for c in found.request.channels or ()):
        return _error(404, "not_found", "no such scheduled announcement")
    return schedule_json(state, found, visible)


@router.patch("/{schedule_id}")
async def patch_schedule(schedule_id: IdParam, request: Request, auth: AuthDep) -> Any:
    try:
        body = await json_body(request, auth)
        s = await update_scheduled(request, auth, schedule_id, body)
    except AnnounceError as exc:
        return _error(exc.status, exc.code, exc.message)
    state = app_state(request)
    assert auth.actor is not None
    return schedule_json(state, s, visible_channels(state, auth.actor))


@router.delete("/{schedule_id}")
async def delete_schedule(schedule_id: IdParam, request: Request, auth: AuthDep) -> Any:
    if auth.actor is None:
        return _error(401, "unauthorized", "sign in first")
    try:
        csrf(request, auth)
    except HTTPException:
        return _error(403, "csrf", "missing or wrong CSRF token")
    try:
        s = await cancel_scheduled(request, auth, schedule_id)
    except AnnounceError as exc:
        return _error(exc.status, exc.code, exc.message)
    return {"id": s.id, "status": s.status}
