"""``/dashboard/console``: the dispatcher console (supervisors, and admins for the channels
assigned to them): hear several channels on one peer connection, talk into one, all of them or
to one person. The page is static; its script (``static/console.js``) does the rest through the
public APIs: a join token for the channels (``POST /api/v1/auth/join-token``), the signaling
WebSocket (``monitor``, ``talk_target``, docs/signaling.md) and each channel's live view
(members and the last committed line)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from voice_server.signaling.console import MAX_HEARD
from voice_server.web.auth import Auth, app_state, authenticate
from voice_server.web.pages import csrf_of, guard
from voice_server.web.policy import Action, channels_for
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]


@router.get("/dashboard/console", response_class=HTMLResponse)
def console_page(request: Request, auth: AuthDep) -> HTMLResponse:
    """The channels the actor supervises (those whose live view they may open: the same rule),
    the first ``MAX_HEARD`` of them monitored at the start."""
    actor = guard(request, auth, Action.DASHBOARD)
    known = app_state(request).channels.list()
    allowed = set(channels_for(actor, Action.LIVE, [c.name for c in known]))
    channels = [c for c in known if c.name in allowed]
    return render(
        request,
        "console.html",
        actor=actor,
        csrf=csrf_of(auth),
        channels=channels,
        max_heard=MAX_HEARD,
    )
