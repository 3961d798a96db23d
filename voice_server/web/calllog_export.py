"""Call-log exports for a records request: CSV (UTF-8 with BOM, formulas defused, times in the
display time zone as Excel reads them) and JSON, headed with who exported what and when — the
audit log's export helpers (:mod:`voice_server.audit.export`), the same for the API and the
dashboard. The export itself is audited by ``calllog_access.export_items``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response

from voice_server.audit.export import csv_document, json_document
from voice_server.calllog.localtime import local_text
from voice_server.web.auth import Auth, app_state
from voice_server.web.calllog_access import Filters, export_items

__all__ = ["CSV_COLUMNS", "export_response"]

CSV_COLUMNS = [
    "id",
    "start",
    "end",
    "channel",
    "channel_name",
    "speaker_id",
    "speaker_name",
    "text",
    "language",
]


def export_response(request: Request, auth: Auth, filters: Filters, fmt: str) -> Response:
    state = app_state(request)
    actor, items, truncated = export_items(request, auth, filters, fmt)
    tz = state.config.zone
    names = {c.name: c.display_name for c in state.channels.list()}
    now = datetime.now(UTC)
    meta = {
        "exported_by": actor.sub,
        "exported_at": now.astimezone(tz).isoformat(timespec="seconds"),
        "time_zone": state.config.display_timezone,
        "query": filters.q or "",
        "filters": json.dumps(filters.audit(state), ensure_ascii=False, sort_keys=True),
        "results": str(len(items)),
        "truncated": "true" if truncated else "false",
    }
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        rows: list[dict[str, Any]] = [
            {
                "id": u.id,
                "start": local_text(u.start_ms, tz),
                "end": local_text(u.end_ms, tz),
                "channel": u.channel,
                "channel_name": names.get(u.channel, u.channel),
                "speaker_id": u.speaker_id,
                "speaker_name": u.speaker_name,
                "text": u.text,
                "language": u.language,
            }
            for u in items
        ]
        body = csv_document(meta, CSV_COLUMNS, rows)
        media = "text/csv; charset=utf-8"
    else:
        documents = [
            {
                **{k: v for k, v in u.as_api(None, tz).items() if k != "clip_url"},
                "channel_name": names.get(u.channel, u.channel),
            }
            for u in items
        ]
        body = json_document(meta, "utterances", documents)
        media = "application/json"
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="calllog-{stamp}.{fmt}"',
            "Cache-Control": "no-store",
        },
    )
