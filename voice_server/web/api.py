"""The call-log REST API: search utterances, read one, export a filtered result, fetch a clip.

``GET /api/v1/utterances?channel=&speaker=&q=&since=&until=&cursor=&limit=`` → ``{"items",
"next_cursor"}`` newest first; ``GET /api/v1/utterances/export?format=csv|json&…``;
``GET /api/v1/utterances/<id>``; ``GET /api/v1/clips/<id>.ogg``.

Callers are who ``web.auth`` says (an ``aud=api`` bearer token, or a dashboard session), allowed
by the access table (``web.policy``: supervisors of the channel; an admin only where also
assigned), and every read is audited — all through ``web.calllog_access``, the same path as the
dashboard's. Errors are ``{"error", "message"}`` (401 with ``WWW-Authenticate: Bearer``).

Clip URLs in results are short-lived signed URLs (``exp`` and ``sig`` = HMAC with the
``clip-url`` derived key over ``<id>.<exp>``, ``clip_url_seconds`` long), audited when issued, so
an ``<audio>`` element can play them without a credential; the clip endpoint also accepts a
token or session instead of a signature (then each fetch is audited).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse

from voice_server.calllog.burst import DONE, SPOOL_DIR
from voice_server.calllog.model import BURST_ID_RE, MAX_UID, UID_RE, parse_time
from voice_server.state import AppState
from voice_server.web.auth import app_state, authenticate
from voice_server.web.calllog_access import Filters, clip_signature, fetch_clip, search, view
from voice_server.web.calllog_export import export_response

router = APIRouter(prefix="/api/v1", tags=["call log"])
Param = Annotated[str | None, Query(max_length=200)]


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def answer(handler: Callable[[], Any]) -> Any:
    """Run ``handler``; refusals (401/403 from auth and policy, 400, 404) as ``{"error",
    "message"}``."""
    try:
        return handler()
    except HTTPException as exc:
        detail: dict[str, Any] = exc.detail if isinstance(exc.detail, dict) else {}
        code = "unauthorized" if exc.status_code == 401 else str(detail.get("code", "error"))
        return _error(exc.status_code, code, str(detail.get("message", "")))


def invalid(message: str) -> HTTPException:
    return HTTPException(400, {"code": "invalid_parameter", "message": message})


def _time(name: str, value: str | None) -> int | None:
    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise invalid(f"{name} must be ISO 8601 with a time zone") from None


def filters_of(
    q: str | None, channel: str | None, speaker: str | None, since: str | None, until: str | None
) -> Filters:
    return Filters(
        q=q or None,
        channel=channel or None,
        speaker=speaker or None,
        since_ms=_time("since", since),
        until_ms=_time("until", until),
    )


@router.get("/utterances")
def list_utterances(
    request: Request,
    channel: Param = None,
    speaker: Param = None,
    q: Param = None,
    since: Param = None,
    until: Param = None,
    cursor: Param = None,
    limit: Annotated[str | None, Query(max_length=8)] = None,
) -> Any:
    """Utterances newest first, filtered; ``next_cursor`` fetches the next page (audited)."""

    def run() -> JSONResponse:
        auth = authenticate(request)
        filters = filters_of(q, channel, speaker, since, until)
        text = limit or "50"
        if not text.isdigit():
            raise invalid("limit must be a number")
        try:
            found = search(request, auth, filters, cursor=cursor, limit=int(text))
        except ValueError as exc:
            raise invalid(str(exc)) from None
        tz = app_state(request).config.zone
        items = [h.utterance.as_api(h.clip_url, tz) for h in found.hits]
        return JSONResponse({"items": items, "next_cursor": found.next_cursor})

    return answer(run)


@router.get(
    "/utterances/export",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    response_class=Response,
)
def export_utterances(
    request: Request,
    format: Annotated[str, Query(pattern=r"^(csv|json)$")] = "csv",
    channel: Param = None,
    speaker: Param = None,
    q: Param = None,
    since: Param = None,
    until: Param = None,
) -> Any:
    """Every hit of a filtered search as CSV (UTF-8 with BOM) or JSON, headed with who exported
    it and when (audited: query, filters, count)."""

    def run() -> Response:
        auth = authenticate(request)
        return export_response(request, auth, filters_of(q, channel, speaker, since, until), format)

    return answer(run)


@router.get("/utterances/{burst_id}")
def get_utterance(burst_id: Annotated[str, PathParam(max_length=MAX_UID)], request: Request) -> Any:
    """One utterance with its words and a signed clip URL (audited as a transcript view)."""

    def run() -> JSONResponse:
        auth = authenticate(request)
        if not UID_RE.match(burst_id):
            raise HTTPException(404, {"code": "not_found", "message": "no such utterance"})
        _, hit = view(request, auth, burst_id)
        tz = app_state(request).config.zone
        return JSONResponse(hit.utterance.as_api(hit.clip_url, tz))

    return answer(run)


def _clip_path(state: AppState, clip: str) -> Path:
    """The clip's file: at its clip path, or still in the spool (committed, not yet moved out)
    under its burst's name (the clip's own name: a row of an all-call, ``<burst>:<channel>``,
    plays its burst's one file). Looked at again after the spool: it may move meanwhile."""
    data_dir = Path(state.config.data_dir)
    final = data_dir / clip
    for path in (final, data_dir / SPOOL_DIR / Path(clip).name, final):
        if path.is_file():
            return path
    raise HTTPException(404, {"code": "not_found", "message": "the clip file is missing"})


@router.get("/clips/{name}")
def get_clip(
    name: str,
    request: Request,
    exp: Annotated[str | None, Query(max_length=20)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> Any:
    """The Ogg/Opus audio of one utterance (signed URL, or a token/session: audited)."""

    def run() -> Response:
        state = app_state(request)
        burst_id = name.removesuffix(DONE)
        if not UID_RE.match(burst_id):
            raise HTTPException(404, {"code": "not_found", "message": "no such clip"})
        signed = exp is not None and sig is not None
        if signed:
            assert exp is not None and sig is not None
            if not exp.isdigit() or int(exp) < time.time():
                raise HTTPException(403, {"code": "forbidden", "message": "the URL has expired"})
            if not hmac.compare_digest(sig, clip_signature(state.key, burst_id, int(exp))):
                raise HTTPException(403, {"code": "forbidden", "message": "bad URL signature"})
        auth = None if signed else authenticate(request)
        utterance = state.calllog.get(burst_id)
        if utterance is None and signed and BURST_ID_RE.match(burst_id):
            # a burst a replay listed before the transcriber committed it: still in the spool
            spooled = Path(state.config.data_dir) / SPOOL_DIR / f"{burst_id}{DONE}"
            if spooled.is_file():
                return FileResponse(spooled, media_type="audio/ogg", filename=f"{burst_id}.ogg")
        if utterance is None or not utterance.clip:
            if auth is not None and auth.actor is None:
                raise HTTPException(401, {"code": "unauthorized", "message": "sign in first"})
            raise HTTPException(404, {"code": "not_found", "message": "no such clip"})
        if auth is not None:
            fetch_clip(request, auth, utterance)
        filename = f"{burst_id.replace(':', '-')}.ogg"
        headers = {"Cache-Control": "private, max-age=300"}
        try:
            path = _clip_path(state, utterance.clip)
        except HTTPException:  # not on this node: the shared store's copy (ClipStore)
            data = state.clips.get(utterance.clip, burst_id) if state.clips is not None else None
            if data is None:
                raise
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
            return Response(data, media_type="audio/ogg", headers=headers)
        return FileResponse(path, media_type="audio/ogg", filename=filename, headers=headers)

    return answer(run)
