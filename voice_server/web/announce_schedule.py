"""Scheduled announcements for the REST API and the dashboard alike: create (``POST
/api/v1/announcements`` with a ``schedule``), show, edit and cancel, each checked against the
access table (``announce`` on every target channel) and audited; refusals are
:class:`~voice_server.announce.request.AnnounceError` (4xx), with nothing stored."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException, Request

from voice_server.announce.request import AnnounceError, AnnounceRequest, parse, targets
from voice_server.announce.schedule import next_fire, parse_schedule
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.announce.service import Author
from voice_server.announce.store import Announcement
from voice_server.audit.chain import Result
from voice_server.calllog.model import BURST_ID_RE, iso, new_burst_id
from voice_server.identity.principal import DirectoryRefusal
from voice_server.state import AppState
from voice_server.web.auth import Auth, app_state, client_address, csrf
from voice_server.web.policy import Action, Actor, actor_from_record, channels_for, decide

__all__ = [
    "cancel_scheduled",
    "create_scheduled",
    "json_body",
    "require_csrf",
    "schedule_json",
    "update_scheduled",
    "visible_channels",
]


MAX_BODY = 16 * 1024


def require_csrf(request: Request, auth: Auth, form_value: str | None = None) -> None:
    """The CSRF check of a state-changing request (sessions only), as an AnnounceError."""
    try:
        csrf(request, auth, form_value)
    except HTTPException as exc:
        raise AnnounceError("csrf", "missing or wrong CSRF token", exc.status_code) from None


async def json_body(request: Request, auth: Auth) -> Any:
    """The JSON body of a state-changing request by a signed-in caller (CSRF checked for
    sessions); AnnounceError 401/403/413/400 otherwise."""
    if auth.actor is None:
        raise AnnounceError("unauthorized", "sign in first", 401)
    require_csrf(request, auth)
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise AnnounceError("too_large", "the body is too large", 413)
    try:
        return json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise AnnounceError("bad_request", "the body is not JSON", 400) from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _store(state: AppState) -> ScheduleStore:
    if state.schedules is None or state.announcer is None:
        raise AnnounceError("unavailable", "announcements are off", 503)
    return state.schedules


def visible_channels(state: AppState, actor: Actor) -> frozenset[str]:
    known = [c.name for c in state.channels.list()]
    return frozenset(channels_for(actor, Action.ANNOUNCE, known))


def schedule_json(state: AppState, s: Scheduled, visible: frozenset[str]) -> dict[str, Any]:
    tz = state.config.zone
    r = s.request
    return {
        "id": s.id,
        "text": r.text,
        "channels": [c for c in r.channels or () if c in visible],
        "urgent": r.urgent,
        "repeat": r.repeat,
        "language": r.language,
        "author": s.author,
        "author_name": s.author_name,
        "schedule": s.schedule.as_json(),
        "next": iso(s.next_ms, tz) if s.next_ms is not None else None,
        "status": s.status,
        "created": iso(s.created_ms, tz),
        "fires": [
            {
                "due": iso(f.due_ms, tz),
                "status": f.status,
                "announcement_id": f.announcement_id,
                "error": f.error,
            }
            for f in s.fires
        ],
    }


async def _audit(
    request: Request,
    actor: Actor,
    target: str,
    details: dict[str, Any],
    result: Result = Result.OK,
) -> None:
    await asyncio.to_thread(
        app_state(request).accounts.audit.record,
        actor,
        Action.ANNOUNCE.value,
        target,
        details,
        result,
        address=client_address(request),
    )


async def _refused(request: Request, actor: Actor, target: str, exc: AnnounceError) -> None:
    result = Result.DENIED if exc.status in (401, 403) else Result.FAILED
    await _audit(request, actor, target, {"error": exc.code}, result)


async def create_scheduled(request: Request, auth: Auth, body: Mapping[str, Any]) -> Scheduled:
    """Check the request and its schedule, store it (nothing is synthesised now)."""
    state = app_state(request)
    actor = auth.actor
    if actor is None:
        raise AnnounceError("unauthorized", "sign in first", 401)
    try:
        store = _store(state)
        now = _now_ms()
        schedule = parse_schedule(body["schedule"], state.config.display_timezone, now)
        req = parse({k: v for k, v in body.items() if k != "schedule"})
        known = await asyncio.to_thread(lambda: [c.name for c in state.channels.list()])
        channels = targets(req, frozenset(channels_for(actor, Action.ANNOUNCE, known)), known)
        req = type(req)(req.text, channels, req.urgent, req.repeat, req.language)
        s = Scheduled(
            new_burst_id(now), actor.sub, actor.name, req, schedule, next_fire(schedule, now),
            "active", now,
        )  # fmt: skip
        await asyncio.to_thread(store.create, s)
    except AnnounceError as exc:
        await _refused(request, actor, "schedule", exc)
        raise
    await _audit(
        request,
        actor,
        f"schedule:{s.id}",
        {"channels": list(channels), "schedule": schedule.as_json(), "characters": len(req.text)},
    )
    return s


async def _own(request: Request, auth: Auth, schedule_id: str) -> tuple[Actor, Scheduled]:
    """The schedule, if the caller may announce into every one of its channels."""
    state = app_state(request)
    actor = auth.actor
    if actor is None:
        raise AnnounceError("unauthorized", "sign in first", 401)
    store = _store(state)
    found = (
        await asyncio.to_thread(store.get, schedule_id) if BURST_ID_RE.match(schedule_id) else None
    )
    visible = await asyncio.to_thread(visible_channels, state, actor)
    if found is None or not any(c in visible for c in found.request.channels or ()):
        raise AnnounceError("not_found", "no such scheduled announcement", 404)
    if not all(c in visible for c in found.request.channels or ()):
        exc = AnnounceError("channel_not_supervised", "you do not supervise all its channels", 403)
        await _refused(request, actor, f"schedule:{schedule_id}", exc)
        raise exc
    if found.status != "active":
        raise AnnounceError("not_active", f"the schedule is {found.status}", 409)
    return actor, found


async def update_scheduled(request: Request, auth: Auth, schedule_id: str, patch: Any) -> Scheduled:
    """Change text, channels, urgency, repeats, language or the schedule itself."""
    if not isinstance(patch, Mapping):
        raise AnnounceError("bad_request", "the body must be a JSON object", 400)
    actor, found = await _own(request, auth, schedule_id)
    state = app_state(request)
    try:
        now = _now_ms()
        old = found.request
        merged = {
            "text": old.text,
            "channels": list(old.channels or ()),
            "urgent": old.urgent,
            "repeat": old.repeat,
            "language": old.language,
            **{k: v for k, v in patch.items() if k != "schedule"},
        }
        req = parse(merged)
        known = await asyncio.to_thread(lambda: [c.name for c in state.channels.list()])
        channels = targets(req, frozenset(channels_for(actor, Action.ANNOUNCE, known)), known)
        req = type(req)(req.text, channels, req.urgent, req.repeat, req.language)
        schedule = found.schedule
        if "schedule" in patch:
            schedule = parse_schedule(patch["schedule"], state.config.display_timezone, now)
        following = next_fire(schedule, now)
        await asyncio.to_thread(_store(state).update, found.id, req, schedule, following, now)
    except AnnounceError as exc:
        await _refused(request, actor, f"schedule:{schedule_id}", exc)
        raise
    await _audit(request, actor, f"schedule:{found.id}", {"edited": sorted(patch)})
    updated = await asyncio.to_thread(_store(state).get, found.id)
    assert updated is not None
    return updated


async def cancel_scheduled(request: Request, auth: Auth, schedule_id: str) -> Scheduled:
    actor, found = await _own(request, auth, schedule_id)
    store = _store(app_state(request))
    await asyncio.to_thread(store.cancel, found.id, _now_ms())
    await _audit(request, actor, f"schedule:{found.id}", {"cancelled": True})
    cancelled = await asyncio.to_thread(store.get, found.id)
    assert cancelled is not None
    return cancelled


def _still_allowed(state: AppState, author: str, channels: tuple[str, ...]) -> tuple[str, ...]:
    """Of ``channels``, those the author may still announce into (blocking)."""
    try:
        record = state.accounts.directory.lookup(author)
    except DirectoryRefusal:
        raise AnnounceError("author_gone", "the author's account no longer exists", 403) from None
    if record is None:  # token-only mode: nothing to check against
        return channels
    if not record.enabled:
        raise AnnounceError("author_disabled", "the author's account is disabled", 403)
    actor = actor_from_record(record)
    return tuple(c for c in channels if decide(actor, Action.ANNOUNCE, channel=c))


def fire_as_author(state: AppState) -> Any:
    """The scheduler's fire: re-checks the author's rights at fire time (a supervisor who lost a
    channel, or was disabled, no longer announces there), then plays."""

    async def fire(author: str, name: str, request: AnnounceRequest) -> Announcement:
        announcer = state.announcer
        if announcer is None:
            raise AnnounceError("unavailable", "announcements are off", 503)
        asked = request.channels or ()
        channels = await asyncio.to_thread(_still_allowed, state, author, asked)
        if not channels:
            raise AnnounceError("channel_not_supervised", "the author supervises none of them", 403)
        return await announcer.announce(Author(author, name), request, channels)

    return fire
