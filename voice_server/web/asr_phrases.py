"""The deployment-wide phrase list for speech recognition: ``GET``/``PUT /api/v1/asr/phrases``
and the admin page ``/dashboard/phrases`` (:mod:`voice_server.transcribe.phrases` says what
each engine does with it). Viewing needs ``channels.view``, changing ``channels.manage``
(admins); a change is audited with its size, not its words."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from voice_server.transcribe import phrases as phrase_lists
from voice_server.transcribe.phrase_store import FilePhrases, PhraseStore
from voice_server.web.auth import Auth, app_state, authenticate, client_address, csrf
from voice_server.web.common import require
from voice_server.web.pages import csrf_of, done, guard
from voice_server.web.policy import Action, Actor, decide
from voice_server.web.templating import render

router = APIRouter()
AuthDep = Annotated[Auth, Depends(authenticate)]


class PhrasesBody(BaseModel):
    phrases: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=phrase_lists.MAX_TERMS * 2
    )


def _store(request: Request) -> PhraseStore:
    state = app_state(request)
    if state.phrases is None:
        state.phrases = FilePhrases(state.config.data_dir)
    return state.phrases


def _save(request: Request, actor: Actor, terms: list[str]) -> list[str]:
    state = app_state(request)
    saved = _store(request).save(terms)  # ValueError: past the limits
    state.accounts.audit.record(
        actor, "asr.phrases", "deployment", {"count": len(saved)}, address=client_address(request)
    )
    return saved


@router.get("/api/v1/asr/phrases", response_model=PhrasesBody, tags=["admin"])
def get_phrases(request: Request, auth: AuthDep) -> PhrasesBody:
    """The deployment-wide phrase list (Whisper: with each channel's list, as hotwords)."""
    require(request, auth, Action.CHANNELS_VIEW, audit_target="asr:phrases")
    return PhrasesBody(phrases=_store(request).load())


@router.put("/api/v1/asr/phrases", response_model=PhrasesBody, tags=["admin"])
def put_phrases(body: PhrasesBody, request: Request, auth: AuthDep) -> PhrasesBody:
    """Replace the deployment-wide phrase list (at most 200 phrases of 40 characters)."""
    csrf(request, auth)
    actor = require(request, auth, Action.CHANNELS_MANAGE, audit_target="asr:phrases")
    try:
        return PhrasesBody(phrases=_save(request, actor, body.phrases))
    except ValueError as exc:
        raise HTTPException(400, detail={"code": "bad_phrases", "message": str(exc)}) from None


def _page(
    request: Request, auth: Auth, actor: Actor, *, error: str = "", status: int = 200
) -> HTMLResponse:
    return render(
        request,
        "phrases.html",
        actor=actor,
        csrf=csrf_of(auth),
        phrases=_store(request).load(),
        can_edit=bool(decide(actor, Action.CHANNELS_MANAGE)),
        error=error,
        done=request.query_params.get("done") == "1",
        status_code=status,
    )


@router.get("/dashboard/phrases", response_class=HTMLResponse, include_in_schema=False)
def phrases_page(request: Request, auth: AuthDep) -> HTMLResponse:
    return _page(request, auth, guard(request, auth, Action.CHANNELS_VIEW))


@router.post("/dashboard/phrases", include_in_schema=False)
def phrases_save(
    request: Request,
    auth: AuthDep,
    csrf_token: Annotated[str, Form(alias="csrf", max_length=128)] = "",
    phrases: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE, audit_target="asr:phrases")
    try:
        _save(request, actor, phrases.splitlines())
    except ValueError as exc:
        return _page(request, auth, actor, error=str(exc), status=400)
    return done("/dashboard/phrases")
