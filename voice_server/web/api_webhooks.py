"""Signed webhooks over REST (admins): ``/api/v1/webhooks`` list / register (the ``whsec_``
secret is shown once, in the answer) / remove, ``/api/v1/webhooks/dead-letters`` and
``.../deliveries/<id>/redeliver``. Every change is audited; errors are ``{"error",
"message"}``: ``bad_url``, ``self_url``, ``bad_events``, ``bad_ca_file``, ``queue_full``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from voice_server.alerts.model import AlertError
from voice_server.audit.chain import Result
from voice_server.identity.tokens import Role
from voice_server.state import AppState
from voice_server.web.api_alerts import error, json_body, signed_in
from voice_server.web.auth import Auth, app_state, authenticate, client_address
from voice_server.web.policy import Actor
from voice_server.webhooks import sign
from voice_server.webhooks.rules import MAX_ENDPOINTS, WebhookError, check_events, check_url
from voice_server.webhooks.store import WebhookStore

__all__ = [
    "create_webhook_endpoint",
    "own_addresses",
    "redeliver_delivery",
    "remove_webhook_endpoint",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["webhooks"])
AuthDep = Annotated[Auth, Depends(authenticate)]


def own_addresses(state: AppState) -> list[tuple[str, int]]:
    """Where this server answers: its listening address and its public URL."""
    own = [(state.config.host, state.config.port)]
    if state.config.public_url:
        parts = urlsplit(state.config.public_url)
        if parts.hostname:
            own.append((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    return own


def _store(state: AppState) -> WebhookStore:
    if state.webhooks is None:
        raise WebhookError("unavailable", "webhooks are off", 503)
    return state.webhooks


async def _admin(request: Request, auth: Auth, *, write: bool, action: str) -> Actor:
    try:
        actor = signed_in(request, auth, write=write)
    except AlertError as exc:
        raise WebhookError(exc.code, exc.message, exc.status) from None
    if actor.role is not Role.ADMIN:
        await asyncio.to_thread(
            app_state(request).accounts.audit.record,
            actor,
            action,
            "webhooks",
            {"reason": "admins only"},
            Result.DENIED,
            address=client_address(request),
        )
        raise WebhookError("forbidden", "admins only", 403)
    return actor


def _fail(exc: WebhookError) -> JSONResponse:
    return error(exc.status, exc.code, exc.message)


@router.get("/webhooks")
async def list_webhooks(request: Request, auth: AuthDep) -> Any:
    try:
        await _admin(request, auth, write=False, action="webhook.view")
        store = _store(app_state(request))
    except WebhookError as exc:
        return _fail(exc)
    items = await asyncio.to_thread(store.endpoints)
    counts = await asyncio.to_thread(store.counts)
    return {"items": [e.public() for e in items], "deliveries": counts}


def create_webhook_endpoint(request: Request, actor: Actor, body: Any) -> dict[str, Any]:
    state = app_state(request)
    store = _store(state)
    if not isinstance(body, dict):
        raise WebhookError("bad_request", 'send {"url", "events", "ca_file"?}')
    url = check_url(body.get("url"), own_addresses(state))
    events = check_events(body.get("events"))
    ca_file = body.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not Path(ca_file).is_file():
            raise WebhookError("bad_ca_file", "ca_file must name a PEM file on the server")
    if len(store.endpoints()) >= MAX_ENDPOINTS:
        raise WebhookError("too_many", f"at most {MAX_ENDPOINTS} endpoints")
    secret = sign.new_secret()
    with state.db.transaction() as conn:
        ep = store.add_endpoint(
            conn, url, events, secret, ca_file, actor.sub, int(time.time() * 1000)
        )
        state.accounts.audit.record(
            actor,
            "webhook.create",
            f"webhook:{ep.id}",
            {"host": urlsplit(url).hostname, "events": events, "ca_file": bool(ca_file)},
            address=client_address(request),
            conn=conn,
        )
    return {**ep.public(), "secret": secret}


@router.post("/webhooks", status_code=201)
async def create_webhook(request: Request, auth: AuthDep) -> Any:
    try:
        actor = await _admin(request, auth, write=True, action="webhook.create")
        try:
            body = await json_body(request)
        except AlertError as exc:
            raise WebhookError(exc.code, exc.message, exc.status) from None
        created = await asyncio.to_thread(create_webhook_endpoint, request, actor, body)
    except WebhookError as exc:
        await asyncio.to_thread(_audit_failure, request, auth, "webhook.create", exc)
        return _fail(exc)
    return JSONResponse(created, status_code=201)


def _audit_failure(request: Request, auth: Auth, action: str, exc: WebhookError) -> None:
    if auth.actor is None or exc.status in (401, 403):
        return  # refusals of who is asking are audited where they are decided
    app_state(request).accounts.audit.record(
        auth.actor,
        action,
        "webhooks",
        {"error": exc.code},
        Result.FAILED,
        address=client_address(request),
    )


def remove_webhook_endpoint(request: Request, actor: Actor, endpoint_id: str) -> bool:
    state = app_state(request)
    store = _store(state)
    with state.db.transaction() as conn:
        gone = store.remove_endpoint(conn, endpoint_id)
        if gone:
            state.accounts.audit.record(
                actor,
                "webhook.remove",
                f"webhook:{endpoint_id}",
                address=client_address(request),
                conn=conn,
            )
    return gone


@router.delete("/webhooks/{endpoint_id}")
async def remove_webhook(endpoint_id: str, request: Request, auth: AuthDep) -> Any:
    try:
        actor = await _admin(request, auth, write=True, action="webhook.remove")
        gone = await asyncio.to_thread(remove_webhook_endpoint, request, actor, endpoint_id[:64])
    except WebhookError as exc:
        return _fail(exc)
    if not gone:
        return error(404, "not_found", "no such webhook")
    return Response(status_code=204)


@router.get("/webhooks/dead-letters")
async def dead_letters(request: Request, auth: AuthDep) -> Any:
    try:
        await _admin(request, auth, write=False, action="webhook.view")
        store = _store(app_state(request))
    except WebhookError as exc:
        return _fail(exc)
    items = await asyncio.to_thread(store.list, "dead")
    return {"items": [d.public() for d in items]}


def redeliver_delivery(request: Request, actor: Actor, delivery_id: int) -> None:
    state = app_state(request)
    store = _store(state)
    found = store.get(delivery_id)
    if found is None or found.state != "dead":
        raise WebhookError("not_found", "no such dead-lettered delivery", 404)
    with state.db.transaction() as conn:
        if not store.redeliver(conn, delivery_id, int(time.time() * 1000)):
            raise WebhookError("queue_full", "the delivery queue is full", 409)
        state.accounts.audit.record(
            actor,
            "webhook.redeliver",
            f"webhook:{found.endpoint_id}",
            {"delivery": delivery_id, "msg_id": found.msg_id},
            address=client_address(request),
            conn=conn,
        )
    if state.dispatcher is not None:
        state.dispatcher.nudge()


@router.post("/webhooks/deliveries/{delivery_id}/redeliver")
async def redeliver(delivery_id: int, request: Request, auth: AuthDep) -> Any:
    try:
        actor = await _admin(request, auth, write=True, action="webhook.redeliver")
        await asyncio.to_thread(redeliver_delivery, request, actor, delivery_id)
    except WebhookError as exc:
        return _fail(exc)
    return {"id": delivery_id, "state": "queued"}
