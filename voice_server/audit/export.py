"""Export documents [pure]: CSV (UTF-8 with BOM, Excel-friendly) and JSON, each headed with who
exported it and when. Used for the audit log now and meant for call-log exports later.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, tab or CR) are
prefixed with an apostrophe (CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BOM = "\ufeff"
AUDIT_COLUMNS = [
    "seq",
    "at",
    "actor",
    "actor_role",
    "action",
    "target",
    "result",
    "address",
    "details",
    "prev_hash",
    "hash",
]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text


def csv_document(
    meta: Mapping[str, str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]
) -> bytes:
    """First row: ``key, value`` pairs of ``meta``; then the header; then one row per item."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow([_cell(x) for pair in meta.items() for x in pair])
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return (BOM + buf.getvalue()).encode("utf-8")


def json_document(meta: Mapping[str, str], key: str, items: Iterable[Mapping[str, Any]]) -> bytes:
    body = {**meta, key: list(items)}
    return json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8")
