"""The dashboard's call log: search (``/dashboard/search``), one transcript
(``/dashboard/utterances/<id>``), export of a filtered result and the live view pages
(``/dashboard/live``, ``/dashboard/live/<channel>``; the feed is ``web.live``'s WebSocket).

Everything goes through ``web.calllog_access`` (policy, store, audit), exactly like the REST
API. Dates are typed and times shown in ``display_timezone``; hits are highlighted on the server
(``web.highlight``: escaped, then ``<mark>``); each hit carries an ``<audio>`` player with a
short-lived signed clip URL issued (and audited) as the page is rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from voice_server.calllog.localtime import day_end_ms, day_start_ms, local_text
from voice_server.calllog.model import UID_RE, iso
from voice_server.state import AppState
from voice_server.web.auth import Auth, app_state, authenticate
from voice_server.web.calllog_access import Filters, Hit, search, view
from voice_server.web.calllog_export import export_response
from voice_server.web.highlight import highlight
from voice_server.web.pages import PageExit, csrf_of, guard
from voice_server.web.policy import Action, Actor, channels_for
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]
Text = Annotated[str, Query(max_length=200)]
FORM_KEYS = ("q", "channel", "speaker", "from", "to")


def _channels(state: AppState, actor: Actor, action: Action) -> list[Any]:
    allowed = set(channels_for(actor, action, [c.name for c in state.channels.list()]))
    return [c for c in state.channels.list() if c.name in allowed]


def _speakers(state: AppState, channels: set[str]) -> list[Any]:
    """Accounts that talk or supervise in these channels (suggestions for the speaker box)."""
    return [
        u for u in state.accounts.users.all() if channels & (set(u.member_of) | set(u.supervises))
    ]


def _refusal(request: Request, auth: Auth, exc: HTTPException) -> PageExit:
    key = {403: "forbidden", 404: "not_found"}.get(exc.status_code, "error")
    page = render(
        request,
        "error.html",
        actor=auth.actor,
        csrf=csrf_of(auth),
        status_code=exc.status_code,
        message_key=key,
    )
    return PageExit(page)


def _filters(state: AppState, form: dict[str, str]) -> Filters:
    """The form's filters; ValueError for a date that is not YYYY-MM-DD."""
    tz = state.config.zone
    since = day_start_ms(form["from"], tz) if form["from"] else None
    until = day_end_ms(form["to"], tz) if form["to"] else None
    return Filters(
        q=form["q"] or None,
        channel=form["channel"] or None,
        speaker=form["speaker"] or None,
        since_ms=since,
        until_ms=until,
    )


def _hit_view(state: AppState, hit: Hit, names: dict[str, str], q: str) -> dict[str, Any]:
    u = hit.utterance
    return {
        "id": u.id,
        "time": local_text(u.start_ms, state.config.zone),
        "iso": iso(u.start_ms, state.config.zone),
        "channel": u.channel,
        "channel_name": names.get(u.channel, u.channel),
        "speaker_id": u.speaker_id,
        "speaker_name": u.speaker_name,
        "marked": highlight(u.text, q, u.language),
        "clip_url": hit.clip_url,
    }


def _guarded(request: Request, auth: Auth, run: Callable[[], Any]) -> Any:
    try:
        return run()
    except HTTPException as exc:
        if exc.status_code == 401:
            guard(request, auth, Action.DASHBOARD)  # redirects to sign in
        raise _refusal(request, auth, exc) from None


@router.get("/dashboard/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    auth: AuthDep,
    q: Text | None = None,
    channel: Text = "",
    speaker: Text = "",
    from_: Annotated[str, Query(alias="from", max_length=10)] = "",
    to: Annotated[str, Query(max_length=10)] = "",
    cursor: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    state = app_state(request)
    channels = _channels(state, actor, Action.SEARCH)
    form = {"q": q or "", "channel": channel, "speaker": speaker, "from": from_, "to": to}
    context: dict[str, Any] = {"form": form, "results": None, "error_key": ""}
    if q is not None:  # the form was sent (an empty query lists the newest)
        try:
            filters = _filters(state, form)
            found = search(request, auth, filters, cursor=cursor or None)
        except ValueError:
            context["error_key"] = "bad_date"
        except HTTPException as exc:
            if exc.status_code != 400:
                raise _refusal(request, auth, exc) from None
            context["error_key"] = "bad_query"
        else:
            names = {c.name: c.display_name for c in state.channels.list()}
            query = {k: v for k, v in form.items() if v}
            context.update(
                results=[_hit_view(state, h, names, form["q"]) for h in found.hits],
                next_query=urlencode({**query, "q": form["q"], "cursor": found.next_cursor})
                if found.next_cursor
                else "",
                export_query=urlencode(query),
            )
    return render(
        request,
        "search.html",
        actor=actor,
        csrf=csrf_of(auth),
        channels=channels,
        speakers=_speakers(state, {c.name for c in channels}),
        zone=state.config.display_timezone,
        **context,
    )


@router.get("/dashboard/search/export")
def search_export(
    request: Request,
    auth: AuthDep,
    format: Annotated[str, Query(pattern=r"^(csv|json)$")] = "csv",
    q: Text = "",
    channel: Text = "",
    speaker: Text = "",
    from_: Annotated[str, Query(alias="from", max_length=10)] = "",
    to: Annotated[str, Query(max_length=10)] = "",
) -> Response:
    guard(request, auth, Action.DASHBOARD)
    form = {"q": q, "channel": channel, "speaker": speaker, "from": from_, "to": to}

    def run() -> Response:
        try:
            filters = _filters(app_state(request), form)
        except ValueError:
            raise HTTPException(400) from None
        return export_response(request, auth, filters, format)

    result: Response = _guarded(request, auth, run)
    return result


@router.get("/dashboard/utterances/{burst_id}", response_class=HTMLResponse)
def utterance_page(burst_id: str, request: Request, auth: AuthDep, q: Text = "") -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    state = app_state(request)
    if not UID_RE.match(burst_id):  # a burst id, or a broadcast's row ``<id>:<channel>``
        raise _refusal(request, auth, HTTPException(404))
    _, hit = _guarded(request, auth, lambda: view(request, auth, burst_id))
    names = {c.name: c.display_name for c in state.channels.list()}
    return render(
        request,
        "utterance.html",
        actor=actor,
        csrf=csrf_of(auth),
        hit=_hit_view(state, hit, names, q),
        words=hit.utterance.words,
        zone=state.config.display_timezone,
    )


@router.get("/dashboard/live", response_class=HTMLResponse)
def live_index(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.DASHBOARD)
    channels = _channels(app_state(request), actor, Action.LIVE)
    return render(request, "live_index.html", actor=actor, csrf=csrf_of(auth), channels=channels)


@router.get("/dashboard/live/{channel}", response_class=HTMLResponse)
def live_page(channel: str, request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.LIVE, channel=channel[:64])
    found = app_state(request).channels.get(channel)
    if found is None:
        raise _refusal(request, auth, HTTPException(404))
    transcriber = app_state(request).link.transcriber
    partials = transcriber is None or bool(transcriber.get("partials", True))
    return render(
        request, "live.html", actor=actor, csrf=csrf_of(auth), channel=found, partials=partials
    )
