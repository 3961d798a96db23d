"""Recorded announcements: ``POST /api/v1/announcements/recorded`` (multipart: ``file``, the
recording, at most 10 MB and 120 s, any format PyAV reads; ``channels`` (repeatable; none:
every channel one supervises), ``urgent``, ``repeat``, ``text``: what the call log shows,
default 「録音放送」) → ``201 {"id", "status", "channels", "seconds"}``, played like a spoken one.
Refusals: ``too_large`` (413), ``not_audio`` (415), ``too_long`` (422), ``no_file`` (400), and
the announcement's own; nothing is stored."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from voice_server.announce.request import AnnounceError
from voice_server.announce.speech import MAX_UPLOAD_BYTES
from voice_server.web.announce_schedule import require_csrf
from voice_server.web.api_announce import create, created
from voice_server.web.auth import Auth, authenticate

__all__ = ["DEFAULT_TEXT", "router"]

router = APIRouter(prefix="/api/v1", tags=["announcements"])
AuthDep = Annotated[Auth, Depends(authenticate)]
DEFAULT_TEXT = "録音放送"
SLACK = 64 * 1024  # the multipart envelope around the file


def _error(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


async def read_upload(request: Request, auth: Auth) -> tuple[dict[str, Any], bytes]:
    """The form fields (as an announcement body) and the file's bytes. AnnounceError 401/403
    (CSRF)/413/400."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + SLACK:
        raise AnnounceError("too_large", "a recording may be at most 10 MB", 413)
    if auth.actor is None:
        raise AnnounceError("unauthorized", "sign in first", 401)
    if request.headers.get("content-type", "").split(";")[0].strip() != "multipart/form-data":
        raise AnnounceError("no_file", "send the recording as multipart/form-data 'file'", 400)
    form = await request.form(max_files=1, max_fields=80)
    try:
        token = form.get("csrf")
        require_csrf(request, auth, token if isinstance(token, str) else None)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise AnnounceError("no_file", "no 'file' in the form", 400)
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise AnnounceError("too_large", "a recording may be at most 10 MB", 413)
        repeat = str(form.get("repeat") or "1")
        body: dict[str, Any] = {
            "text": str(form.get("text") or "").strip() or DEFAULT_TEXT,
            "urgent": str(form.get("urgent") or "").lower() in ("1", "true", "on", "yes"),
            "repeat": int(repeat) if repeat.isdigit() else repeat,
        }
        channels = [str(c) for c in form.getlist("channels") if str(c)]
        if channels:
            body["channels"] = channels
        return body, data
    finally:
        await form.close()


@router.post("/announcements/recorded", status_code=201)
async def post_recorded(request: Request, auth: AuthDep) -> Any:
    """Play an uploaded recording into ``channels``: 201 ``{"id", ...}``."""
    try:
        body, data = await read_upload(request, auth)
        a = await create(request, auth, body, upload=data)
    except AnnounceError as exc:
        return _error(exc.status, exc.code, exc.message)
    return created(a)
