"""``/dashboard/admin/network``: which media path each connected participant takes and how it
fares (their ``stats`` reports, signaling.diagnostics), every channel on one page, with the count
per path. Admins only (``Action.NETWORK_VIEW``). What a client reports is shown as text, never
trusted; the page reads a snapshot of the hub's sessions (as ``/metrics`` does)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from voice_server.signaling.hub import Hub
from voice_server.signaling.sessions import SessionState
from voice_server.web.auth import Auth, app_state, authenticate
from voice_server.web.pages import csrf_of, guard
from voice_server.web.policy import Action
from voice_server.web.templating import render

router = APIRouter(include_in_schema=False)
AuthDep = Annotated[Auth, Depends(authenticate)]


def _number(value: float | None, scale: float, digits: int) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


def network_rows(hub: Hub, now: float) -> list[dict[str, Any]]:
    """One row per session (channel, then name), its last report formatted for the page."""
    rows = []
    for s in sorted(hub.registry, key=lambda s: (s.channel, s.name, s.id)):
        report = hub.diagnostics.get(s.id)
        row: dict[str, Any] = {
            "channel": s.channel,
            "name": s.name,
            "sub": s.sub,
            "device_id": s.device_id,
            "online": s.state is SessionState.ATTACHED,
            "path": report.path if report else "",
        }
        if report is not None:
            row.update(
                rtt=_number(report.rtt_ms, 1, 0),
                loss=_number(report.loss, 100, 1),
                jitter=_number(report.jitter_ms, 1, 0),
                concealed=_number(report.concealed_ratio, 100, 1),
                age=max(0, round(now - report.at)),
            )
        rows.append(row)
    return rows


@router.get("/dashboard/admin/network", response_class=HTMLResponse)
def network_page(request: Request, auth: AuthDep) -> HTMLResponse:
    actor = guard(request, auth, Action.NETWORK_VIEW)
    hub = app_state(request).hub
    return render(
        request,
        "network.html",
        actor=actor,
        csrf=csrf_of(auth),
        rows=network_rows(hub, time.time()),
        by_path=hub.diagnostics.path_counts(),
    )
