"""``/dashboard/webhooks`` (admins): the signed webhook endpoints (register one: its secret is
shown once on the page that follows; remove one), the delivery counts and the dead-letter list
with a redeliver button per delivery. Everything goes through ``web.api_webhooks`` (checks,
audit) like the REST API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from voice_server.web.api_webhooks import (
    create_webhook_endpoint,
    redeliver_delivery,
    remove_webhook_endpoint,
)
from voice_server.web.auth import Auth, app_state, authenticate, csrf
from voice_server.web.pages import csrf_of, guard
from voice_server.web.policy import Action, Actor
from voice_server.web.templating import render
from voice_server.webhooks.rules import EVENT_TYPES, WebhookError

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]
CsrfField = Annotated[str, Form(alias="csrf", max_length=128)]


def _page(
    request: Request, auth: Auth, actor: Actor, status: int = 200, **extra: Any
) -> HTMLResponse:
    state = app_state(request)
    store = state.webhooks
    context: dict[str, Any] = {
        "error": "",
        "created": None,
        "form": {"url": "", "events": [], "ca_file": ""},
        "done": request.query_params.get("done") == "1",
    }
    context.update(extra)
    return render(
        request,
        "webhooks.html",
        actor=actor,
        csrf=csrf_of(auth),
        status_code=status,
        endpoints=store.endpoints() if store else [],
        counts=store.counts() if store else {},
        dead=store.list("dead", 50) if store else [],
        event_types=EVENT_TYPES,
        **context,
    )


@router.get("/dashboard/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    return _page(request, auth, actor)


@router.post("/dashboard/webhooks", response_class=HTMLResponse)
def add_webhook(
    request: Request,
    auth: AuthDep,
    url: Annotated[str, Form(max_length=2000)] = "",
    events: Annotated[list[str] | None, Form(max_length=16)] = None,
    ca_file: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: CsrfField = "",
) -> HTMLResponse:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    body = {"url": url, "events": events or [], "ca_file": ca_file or None}
    try:
        created = create_webhook_endpoint(request, actor, body)
    except WebhookError as exc:
        form = {"url": url, "events": events or [], "ca_file": ca_file}
        return _page(request, auth, actor, exc.status, error=exc.message, form=form)
    return _page(request, auth, actor, 201, created=created)


@router.post("/dashboard/webhooks/{endpoint_id}/remove")
def remove_webhook(
    endpoint_id: str, request: Request, auth: AuthDep, csrf_token: CsrfField = ""
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    remove_webhook_endpoint(request, actor, endpoint_id[:64])
    return RedirectResponse("/dashboard/webhooks?done=1", status_code=303)


@router.post("/dashboard/webhooks/deliveries/{delivery_id}/redeliver", response_class=HTMLResponse)
def redeliver(
    delivery_id: int, request: Request, auth: AuthDep, csrf_token: CsrfField = ""
) -> Response:
    csrf(request, auth, csrf_token)
    actor = guard(request, auth, Action.CHANNELS_MANAGE)
    try:
        redeliver_delivery(request, actor, delivery_id)
    except WebhookError as exc:
        return _page(request, auth, actor, exc.status, error=exc.message)
    return RedirectResponse("/dashboard/webhooks?done=1", status_code=303)
