"""``/api/v1/audit``: read and export the audit log (admins only); exports are audited."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from voice_server.audit.chain import Entry
from voice_server.audit.export import AUDIT_COLUMNS, csv_document, json_document
from voice_server.state import AppState
from voice_server.web.auth import Auth, app_state, authenticate, client_address
from voice_server.web.common import require
from voice_server.web.models import AuditPage
from voice_server.web.policy import Action, Actor

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
AuthDep = Annotated[Auth, Depends(authenticate)]


def page(state: AppState, before: int | None, limit: int) -> tuple[list[Entry], int | None]:
    entries = state.accounts.audit.page(before=before, limit=limit)
    more = len(entries) == limit and entries[-1].seq > 1
    return entries, entries[-1].seq if more else None


def export_response(state: AppState, request: Request, actor: Actor, fmt: str) -> Response:
    """The whole audit log as CSV (UTF-8 with BOM) or JSON, headed with who and when."""
    now = datetime.now(UTC)
    state.accounts.audit.record(
        actor, "audit.export", "audit_log", {"format": fmt}, address=client_address(request)
    )
    meta = {"exported_by": actor.sub, "exported_at": now.isoformat(timespec="seconds")}
    rows = (e.as_dict() for e in state.accounts.audit.iter_all())
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        body = csv_document(meta, AUDIT_COLUMNS, rows)
        media = "text/csv; charset=utf-8"
    else:
        body = json_document(meta, "entries", rows)
        media = "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'},
    )


@router.get("", response_model=AuditPage)
def list_audit(
    request: Request,
    auth: AuthDep,
    before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    """Newest first; pass ``next_before`` as ``before`` for the next page."""
    require(request, auth, Action.AUDIT_VIEW)
    entries, next_before = page(app_state(request), before, limit)
    return AuditPage(entries=[e.as_dict() for e in entries], next_before=next_before)


@router.get(
    "/export",
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
    response_class=Response,
)
def export_audit(
    request: Request,
    auth: AuthDep,
    format: Annotated[str, Query(pattern=r"^(csv|json)$")] = "csv",
) -> Response:
    actor = require(request, auth, Action.AUDIT_EXPORT, audit_target="audit_log")
    return export_response(app_state(request), request, actor, format)
