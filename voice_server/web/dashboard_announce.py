"""``/dashboard/announcements``: type an announcement, see recent ones and who has not heard
them (supervisors, for the channels they supervise); ``/dashboard/about``: credits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from voice_server.announce.request import AnnounceError
from voice_server.announce.schedule import DAYS
from voice_server.web.announce_schedule import (
    cancel_scheduled,
    create_scheduled,
    schedule_json,
    update_scheduled,
)
from voice_server.web.api_announce import announcement_json, create
from voice_server.web.api_recorded import read_upload
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.pages import csrf_of, guard
from voice_server.web.policy import Action, Actor, channels_for
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]


def _page(
    request: Request, auth: Auth, actor: Actor, status: int = 200, **extra: Any
) -> HTMLResponse:
    state = app_state(request)
    known = state.channels.list()
    allowed = set(channels_for(actor, Action.ANNOUNCE, [c.name for c in known]))
    channels = [c for c in known if c.name in allowed]
    visible = frozenset(allowed)
    items = state.announcer.store.recent(visible, limit=20) if state.announcer and visible else []
    scheduled = state.schedules.all() if state.schedules is not None and visible else []
    context: dict[str, Any] = {
        "text": "",
        "chosen": allowed,
        "error": None,
        "sent": False,
        "scheduled_ok": False,
        "days": DAYS,
        "schedules": [
            schedule_json(state, x, visible)
            for x in scheduled
            if any(c in visible for c in x.request.channels or ())
        ],
    }
    context.update(extra)
    return render(
        request,
        "announcements.html",
        actor=actor,
        csrf=csrf_of(auth),
        status_code=status,
        channels=channels,
        items=[announcement_json(state, a, visible) for a in items],
        **context,
    )


@router.get("/dashboard/announcements", response_class=HTMLResponse)
def announcements_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    return _page(request, auth, actor)


@router.post("/dashboard/announcements", response_class=HTMLResponse)
async def announce_form(
    request: Request,
    auth: AuthDep,
    text: Annotated[str, Form(max_length=2000)] = "",
    channels: Annotated[list[str] | None, Form(max_length=64)] = None,
    urgent: Annotated[str, Form(max_length=8)] = "",
    repeat: Annotated[int, Form(ge=1, le=3)] = 1,
    when: Annotated[str, Form(max_length=8)] = "now",
    at: Annotated[str, Form(max_length=40)] = "",
    daily_at: Annotated[str, Form(max_length=8)] = "",
    days: Annotated[list[str] | None, Form(max_length=7)] = None,
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    body: dict[str, Any] = {
        "text": text,
        "channels": channels or [],
        "urgent": bool(urgent),
        "repeat": repeat,
    }
    try:
        if when == "now":
            await create(request, auth, body)
        else:
            body["schedule"] = _schedule_form(when, at, daily_at, days)
            await create_scheduled(request, auth, body)
    except AnnounceError as exc:
        return _page(
            request, auth, actor, exc.status, text=text, chosen=set(channels or []),
            error=exc.message,
        )  # fmt: skip
    if when == "now":
        return _page(request, auth, actor, 201, sent=True)
    return _page(request, auth, actor, 201, scheduled_ok=True)


def _schedule_form(when: str, at: str, daily_at: str, days: list[str] | None) -> dict[str, Any]:
    if when == "at":
        return {"at": at}
    if when == "daily":
        return {"daily_at": daily_at, "days": days or []}
    raise AnnounceError("bad_schedule", "choose now, once or daily", 400)


@router.post("/dashboard/announcements/recorded", response_class=HTMLResponse)
async def recorded_form(request: Request, auth: AuthDep) -> HTMLResponse:
    """A recording uploaded from the dashboard (multipart, the CSRF token in the form)."""
    actor = guard(request, auth, Action.DASHBOARD)
    try:
        body, data = await read_upload(request, auth)
        await create(request, auth, body, upload=data)
    except AnnounceError as exc:
        return _page(request, auth, actor, exc.status, error=exc.message)
    return _page(request, auth, actor, 201, sent=True)


@router.post("/dashboard/announcements/schedules/{schedule_id}/edit", response_class=HTMLResponse)
async def edit_schedule(
    request: Request,
    auth: AuthDep,
    schedule_id: Annotated[str, PathParam(max_length=19)],
    text: Annotated[str, Form(max_length=2000)] = "",
    when: Annotated[str, Form(max_length=8)] = "at",
    at: Annotated[str, Form(max_length=40)] = "",
    daily_at: Annotated[str, Form(max_length=8)] = "",
    days: Annotated[list[str] | None, Form(max_length=7)] = None,
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    try:
        patch = {"text": text, "schedule": _schedule_form(when, at, daily_at, days)}
        await update_scheduled(request, auth, schedule_id, patch)
    except AnnounceError as exc:
        return _page(request, auth, actor, exc.status, error=exc.message)
    return _page(request, auth, actor)


@router.post("/dashboard/announcements/schedules/{schedule_id}/cancel", response_class=HTMLResponse)
async def cancel_schedule(
    request: Request,
    auth: AuthDep,
    schedule_id: Annotated[str, PathParam(max_length=19)],
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    try:
        await cancel_scheduled(request, auth, schedule_id)
    except AnnounceError as exc:
        return _page(request, auth, actor, exc.status, error=exc.message)
    return _page(request, auth, actor)


@router.get("/dashboard/about", response_class=HTMLResponse)
def about_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    return render(request, "about.html", actor=actor, csrf=csrf_of(auth))
