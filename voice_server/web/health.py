"""Health, readiness and metrics routes."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from voice_server.state import AppState

router = APIRouter()


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.voice
    return state


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    """The process is alive and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """Ready to take calls: started, database reachable, not shutting down or draining (and,
    reported but not required, ``transcription``: up, degraded, stopped or off; on a node of a
    cluster ``redis``: up or down — a Redis outage must not take every node out of a proxy at
    once — and ``node``, its id)."""
    state = _state(request)
    checks = state.readiness()
    if state.cluster is not None:
        checks["redis"] = await state.cluster.redis_check()
        checks["node"] = state.cluster.node_id
    ok = all(v for v in checks.values() if isinstance(v, bool))
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> PlainTextResponse:
    state = _state(request)
    client = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        raise HTTPException(
            status_code=403, detail="metrics are not available to this address"
        ) from None
    if not any(address in net for net in state.metrics_networks):
        raise HTTPException(status_code=403, detail="metrics are not available to this address")
    return PlainTextResponse(
        state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
