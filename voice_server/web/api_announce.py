"""Spoken announcements over REST: ``POST /api/v1/announcements`` (supervisors, for channels they
supervise; admins where assigned), ``GET /api/v1/announcements`` and ``.../<id>`` with each
target channel's fate and who has not heard it. Errors are ``{"error", "message"}``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from voice_server.accounts.users import Assignment
from voice_server.announce.heard import not_heard
from voice_server.announce.request import AnnounceError, parse, targets
from voice_server.announce.service import Author
from voice_server.announce.speech import decode_upload, encode, recorded
from voice_server.announce.store import Announcement
from voice_server.audit.chain import Result
from voice_server.calllog.model import BURST_ID_RE, iso
from voice_server.state import AppState
from voice_server.web.announce_schedule import create_scheduled, json_body
from voice_server.web.auth import Auth, app_state, authenticate, client_address
from voice_server.web.policy import Action, Actor, channels_for

__all__ = ["announcement_json", "create", "created", "router"]

router = APIRouter(prefix="/api/v1", tags=["announcements"])
AuthDep = Annotated[Auth, Depends(authenticate)]
MAX_BODY = 16 * 1024


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def announcement_json(state: AppState, a: Announcement, visible: frozenset[str]) -> dict[str, Any]:
    """An announcement as the API shows it, its channels narrowed to ``visible`` (a supervisor
    of B sees B's fate, not that C was also reached)."""
    tz = state.config.zone
    channels = []
    for t in a.targets:
        if t.channel not in visible:
            continue
        heard = a.heard.get(t.channel, {})
        member_names = state.accounts.users.assignments(t.channel)[Assignment.MEMBER]
        channels.append(
            {
                "channel": t.channel,
                "status": t.status,
                "start": iso(t.start_ms, tz) if t.start_ms else None,
                "end": iso(t.end_ms, tz) if t.end_ms else None,
                "heard": sorted(u for u, h in heard.items() if h),
                "not_heard": not_heard(member_names, heard) if t.status == "played" else [],
            }
        )
    return {
        "id": a.id,
        "text": a.text,
        "language": a.language,
        "urgent": a.urgent,
        "repeat": a.repeat,
        "author": a.author,
        "author_name": a.author_name,
        "status": a.status,
        "error": a.error,
        "seconds": a.seconds,
        "created": iso(a.created_ms, tz),
        "channels": channels,
    }


def _supervised(state: AppState, actor: Actor) -> frozenset[str]:
    known = [c.name for c in state.channels.list()]
    return frozenset(channels_for(actor, Action.ANNOUNCE, known))


async def create(
    request: Request, auth: Auth, body: Any, upload: bytes | None = None
) -> Announcement:
    """Check, synthesise (or decode the ``upload``: a recorded announcement), store and start an
    announcement for the signed-in author (shared by the REST routes and the dashboard form).
    AnnounceError when refused (audited)."""
    state = app_state(request)
    actor = auth.actor
    if actor is None:
        raise AnnounceError("unauthorized", "sign in first", 401)
    announcer = state.announcer
    if announcer is None:
        raise AnnounceError("unavailable", "announcements are off", 503)
    try:
        req = parse(body)
        known = await asyncio.to_thread(lambda: [c.name for c in state.channels.list()])
        supervised = frozenset(channels_for(actor, Action.ANNOUNCE, known))
        channels = targets(req, supervised, known)
        recording = None
        if upload is not None:
            pcm = await asyncio.to_thread(decode_upload, upload)
            recording = await asyncio.to_thread(encode, recorded(pcm, req.repeat))
        announcement = await announcer.announce(
            Author(actor.sub, actor.name), req, channels, recording=recording
        )
    except AnnounceError as exc:
        await asyncio.to_thread(
            state.accounts.audit.record,
            actor,
            Action.ANNOUNCE.value,
            "announcement",
            {"error": exc.code},
            Result.DENIED if exc.status in (401, 403) else Result.FAILED,
            address=client_address(request),
        )
        raise
    await asyncio.to_thread(
        state.accounts.audit.record,
        actor,
        Action.ANNOUNCE.value,
        f"announcement:{announcement.id}",
        {
            "channels": list(channels),
            "urgent": req.urgent,
            "characters": len(req.text),
            "recorded": upload is not None,
        },
        address=client_address(request),
    )
    return announcement


@router.post("/announcements", status_code=201)
async def post_announcement(request: Request, auth: AuthDep) -> Any:
    """Speak ``text`` into ``channels`` (default: all one supervises): 201 ``{"id", ...}``."""
    try:
        body = await json_body(request, auth)
    except AnnounceError as exc:
        return _error(exc.status, exc.code, exc.message)
    if isinstance(body, dict) and "schedule" in body:
        try:
            s = await create_scheduled(request, auth, body)
        except AnnounceError as exc:
            return _error(exc.status, exc.code, exc.message)
        state = app_state(request)
        return JSONResponse(
            {
                "id": s.id,
                "status": "scheduled",
                "channels": list(s.request.channels or ()),
                "schedule": s.schedule.as_json(),
                "next": iso(s.next_ms, state.config.zone) if s.next_ms is not None else None,
            },
            status_code=201,
        )
    try:
        a = await create(request, auth, body)
    except AnnounceError as exc:
        return _error(exc.status, exc.code, exc.message)
    return created(a)


def created(a: Announcement) -> JSONResponse:
    """``201 {"id", "status", "channels", "seconds"}`` of a started announcement."""
    return JSONResponse(
        {
            "id": a.id,
            "status": a.status,
            "channels": [t.channel for t in a.targets],
            "seconds": a.seconds,
        },
        status_code=201,
    )


@router.get("/announcements")
def list_announcements(request: Request, auth: AuthDep) -> Any:
    if auth.actor is None:
        return _error(401, "unauthorized", "sign in first")
    state = app_state(request)
    visible = _supervised(state, auth.actor)
    items = state.announcer.store.recent(visible) if state.announcer and visible else []
    return {"items": [announcement_json(state, a, visible) for a in items]}


@router.get("/announcements/{announcement_id}")
def get_announcement(
    announcement_id: Annotated[str, PathParam(max_length=19)], request: Request, auth: AuthDep
) -> Any:
    if auth.actor is None:
        return _error(401, "unauthorized", "sign in first")
    state = app_state(request)
    visible = _supervised(state, auth.actor)
    found = (
        state.announcer.store.get(announcement_id)
        if state.announcer and BURST_ID_RE.match(announcement_id)
        else None
    )
    if found is None or not any(t.channel in visible for t in found.targets):
        return _error(404, "not_found", "no such announcement")
    return announcement_json(state, found, visible)
