"""The call-log REST API (minimal): search utterances, fetch a clip.

``GET /api/v1/utterances?channel=&speaker=&q=&since=&until=&cursor=&limit=`` → ``{"items",
"next_cursor"}`` newest first, and ``GET /api/v1/clips/<id>.ogg``. Both need a token of audience
``api`` (``Authorization: Bearer …``, never in a URL) whose effective role is ``supervisor`` or
``admin`` and that covers the channel. Without a ``channel`` filter the search covers every
channel the token covers.

Clip URLs in search results are short-lived signed URLs (``exp`` and ``sig`` = HMAC with the
``clip-url`` derived key over ``<id>.<exp>``, ``clip_url_seconds`` long, default 10 minutes),
so an ``<audio>`` element can play them without the token; the clip endpoint also accepts the
Bearer token instead of a signature.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from voice_server.calllog.model import (
    BURST_ID_RE,
    SearchQuery,
    decode_cursor,
    encode_cursor,
    parse_time,
)
from voice_server.identity.derived import CLIP_PURPOSE, derive_key, mac_hex
from voice_server.identity.principal import DirectoryRefusal, Principal, effective_principal
from voice_server.identity.tokens import Audience, Role, TokenError, verify_token
from voice_server.state import AppState
from voice_server.transcribe.burst import DONE, SPOOL_DIR

router = APIRouter(prefix="/api/v1", tags=["call log"])
MAX_PARAM = 200


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(
            {"error": self.error, "message": self.message}, status_code=self.status, headers=headers
        )


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.voice
    return state


def authenticate(request: Request) -> Principal:
    """The caller's effective principal from a Bearer token of audience ``api``."""
    state = _state(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "a Bearer token of audience 'api' is required")
    try:
        claims = verify_token(state.key, token.strip(), audience=Audience.API, now=int(time.time()))
        principal = effective_principal(claims, state.accounts.directory.lookup(claims.sub))
    except TokenError as exc:
        raise ApiError(401, "unauthorized", exc.message) from None
    except DirectoryRefusal as exc:
        raise ApiError(403, "forbidden", exc.message) from None
    if principal.role.rank < Role.SUPERVISOR.rank:
        raise ApiError(403, "forbidden", "the call log is for supervisors and admins")
    return principal


def clip_signature(key: bytes, burst_id: str, exp: int) -> str:
    return mac_hex(derive_key(key, CLIP_PURPOSE), f"{burst_id}.{exp}")


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_PARAM:
        raise ApiError(400, "invalid_parameter", f"{name} is too long")
    return value


def _time(request: Request, name: str) -> int | None:
    value = _param(request, name)
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be ISO 8601 with a time zone"
        ) from None


@router.get("/utterances")
def list_utterances(request: Request) -> JSONResponse:
    """Utterances newest first, filtered; ``next_cursor`` fetches the next page."""
    try:
        principal = authenticate(request)
        state = _state(request)
        channel = _param(request, "channel")
        if channel is not None:
            if not principal.may_join(channel):
                raise ApiError(403, "forbidden", "the token does not cover this channel")
            channels: frozenset[str] | None = frozenset({channel})
        else:
            channels = None if principal.all_channels else principal.channels
        cursor = _param(request, "cursor")
        limit_text = _param(request, "limit") or "50"
        try:
            before = decode_cursor(cursor) if cursor is not None else None
            limit = int(limit_text)
            query = SearchQuery(
                channels=channels,
                speaker=_param(request, "speaker"),
                q=_param(request, "q"),
                since_ms=_time(request, "since"),
                until_ms=_time(request, "until"),
                before_rowid=before,
                limit=limit,
            )
        except ValueError as exc:
            raise ApiError(400, "invalid_parameter", str(exc)) from None
        page = state.calllog.search(query)
    except ApiError as exc:
        return exc.response()
    exp = int(time.time()) + state.config.clip_url_seconds
    items: list[dict[str, Any]] = []
    for u in page.items:
        url = None
        if u.clip:
            sig = clip_signature(state.key, u.id, exp)
            url = f"/api/v1/clips/{u.id}.ogg?exp={exp}&sig={sig}"
        items.append(u.as_api(url))
    next_cursor = encode_cursor(page.next_rowid) if page.next_rowid is not None else None
    return JSONResponse({"items": items, "next_cursor": next_cursor})


@router.get("/clips/{name}")
def get_clip(name: str, request: Request) -> Any:
    """The Ogg/Opus audio of one utterance (signed URL, or a Bearer token)."""
    state = _state(request)
    try:
        burst_id = name.removesuffix(DONE)
        if not BURST_ID_RE.match(burst_id):
            raise ApiError(404, "not_found", "no such clip")
        exp_text, sig = request.query_params.get("exp"), request.query_params.get("sig")
        signed = False
        if exp_text is not None and sig is not None:
            if not exp_text.isdigit() or int(exp_text) < time.time():
                raise ApiError(403, "forbidden", "the clip URL has expired")
            if not hmac.compare_digest(sig, clip_signature(state.key, burst_id, int(exp_text))):
                raise ApiError(403, "forbidden", "the clip URL signature is invalid")
            signed = True
        principal = None if signed else authenticate(request)
        utterance = state.calllog.get(burst_id)
        if utterance is None or not utterance.clip:
            raise ApiError(404, "not_found", "no such clip")
        if principal is not None and not principal.may_join(utterance.channel):
            raise ApiError(403, "forbidden", "the token does not cover this channel")
        data_dir = Path(state.config.data_dir)
        path = data_dir / utterance.clip
        if not path.is_file():  # committed, not yet moved out of the spool
            path = data_dir / SPOOL_DIR / f"{burst_id}{DONE}"
        if not path.is_file():
            raise ApiError(404, "not_found", "the clip file is missing")
    except ApiError as exc:
        return exc.response()
    return FileResponse(
        path,
        media_type="audio/ogg",
        filename=f"{burst_id}.ogg",
        headers={"Cache-Control": "private, max-age=300"},
    )
