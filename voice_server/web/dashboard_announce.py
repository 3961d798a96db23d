"""``/dashboard/announcements``: type an announcement, see recent ones and who has not heard
them (supervisors, for the channels they supervise); ``/dashboard/about``: credits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from voice_server.announce.request import AnnounceError
from voice_server.web.api_announce import announcement_json, create
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
    context: dict[str, Any] = {"text": "", "chosen": allowed, "error": None, "sent": False}
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
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.DASHBOARD)
    body = {"text": text, "channels": channels or [], "urgent": bool(urgent), "repeat": repeat}
    try:
        await create(request, auth, body)
    except AnnounceError as exc:
        return _page(
            request, auth, actor, exc.status, text=text, chosen=set(channels or []),
            error=exc.message,
        )  # fmt: skip
    return _page(request, auth, actor, 201, sent=True)


@router.get("/dashboard/about", response_class=HTMLResponse)
def about_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    return render(request, "about.html", actor=actor, csrf=csrf_of(auth))
