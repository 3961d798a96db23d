"""Missed-message replay: ``GET /api/v1/replay/<channel>?cursor=&limit=`` → ``{"channel",
"since", "items", "missed", "next_cursor"}``.

A member of the channel (``calllog.replay`` in the access table: a web session, an ``aud=api``
token, or the ``aud=join`` token a headset or kiosk already holds) gets the channel's last 24 h,
newest first, without other people's direct talks: committed rows with their text, and on the
first page also the bursts that ended but are not transcribed yet (``committed: false``, text
null). Each item says whether the caller ``missed`` it (no connected media in that channel on
any of their devices for it); ``missed`` counts them on this page. Every call is one audit row
(``calllog.replay``: channel, results, missed; no text). Clip URLs are signed like the search's.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from voice_server.calllog.model import decode_cursor, encode_cursor, iso
from voice_server.calllog.replay import REPLAY_MS
from voice_server.identity.principal import DirectoryRefusal
from voice_server.identity.tokens import Audience, TokenError, verify_token
from voice_server.replay.listing import ReplayItem, merge
from voice_server.replay.pending import pending_bursts
from voice_server.state import AppState
from voice_server.web.api import answer, invalid
from voice_server.web.auth import MAX_BEARER, Auth, app_state, authenticate, client_address
from voice_server.web.calllog_access import clip_signature
from voice_server.web.common import require
from voice_server.web.policy import Action, actor_from_token

router = APIRouter(prefix="/api/v1", tags=["replay"])

__all__ = ["router"]


def _caller(request: Request) -> Auth:
    """A session, an API token, or a join token (what a headset holds)."""
    state = app_state(request)
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not token or len(token) > MAX_BEARER:
        return authenticate(request)
    try:
        claims = verify_token(state.key, token, audience=Audience.JOIN, now=int(time.time()))
    except TokenError:
        return authenticate(request)  # an API token, or the refusal of a bad one
    try:
        record = state.accounts.directory.lookup(claims.sub)
    except DirectoryRefusal as exc:
        raise HTTPException(401, {"code": f"user_{exc.reason}", "message": exc.message}) from None
    if record is not None and not record.enabled:
        raise HTTPException(401, {"code": "user_disabled", "message": "user is disabled"})
    return Auth(actor_from_token(claims, record))


def _clip_url(state: AppState, item: ReplayItem, exp: int) -> str | None:
    if not item.has_clip:
        return None
    return f"/api/v1/clips/{item.id}.ogg?exp={exp}&sig={clip_signature(state.key, item.id, exp)}"


@router.get("/replay/{channel}")
def replay(
    channel: Annotated[str, PathParam(max_length=64)],
    request: Request,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[str | None, Query(max_length=8)] = None,
) -> Any:
    """The channel's last 24 h for a member, newest first, each marked missed or not."""

    def run() -> JSONResponse:
        state = app_state(request)
        auth = _caller(request)
        actor = require(request, auth, Action.REPLAY, channel=channel)
        text = limit or "50"
        if not text.isdigit() or not 1 <= int(text) <= 200:
            raise invalid("limit must be a number within 1..200")
        try:
            before = decode_cursor(cursor) if cursor else None
        except ValueError as exc:
            raise invalid(str(exc)) from None
        now = time.time_ns() // 1_000_000
        since = now - REPLAY_MS
        page = state.calllog.replay(
            channel, actor.sub, since_ms=since, before_rowid=before, limit=int(text)
        )
        pending = pending_bursts(state.config.data_dir, channel, since) if before is None else []
        presence = state.presence

        def heard(start: int, end: int) -> bool | None:
            return None if presence is None else presence.heard(channel, actor.sub, start, end)

        items = merge(actor.sub, page.items, pending, heard, since_ms=since)
        missed = sum(1 for i in items if i.missed)
        state.accounts.audit.record(
            actor,
            Action.REPLAY.value,
            f"channel:{channel}",
            {
                "results": len(items),
                "missed": missed,
                "page": "next" if cursor else "first",
                "via": actor.via,
            },
            address=client_address(request),
        )
        exp = int(time.time()) + state.config.clip_url_seconds
        tz = state.config.zone
        next_cursor = encode_cursor(page.next_rowid) if page.next_rowid is not None else None
        return JSONResponse(
            {
                "channel": channel,
                "since": iso(since, tz),
                "items": [i.as_api(_clip_url(state, i, exp), tz) for i in items],
                "missed": missed,
                "next_cursor": next_cursor,
            }
        )

    return answer(run)
