"""The alert model and its state machine [pure].

An alert has a kind (``emergency``, ``keyword``, ``transcription``) and moves through
``raised`` → ``acknowledged`` (by whom) → ``resolved`` (``valid`` | ``false_alarm``, with a
note). Resolving a raised alert acknowledges it in the same step (the resolver handled it).
Every other move is refused with a stable error code; the store applies a move only if the alert
is still in the state the move was computed from (compare and set), so two supervisors
acknowledging at once give one acknowledgement and one ``alert_state`` refusal.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "ALERT_ID_RE",
    "MAX_NOTE",
    "SYSTEM",
    "Alert",
    "AlertError",
    "AlertKind",
    "AlertState",
    "Resolution",
    "acknowledge",
    "clean_note",
    "escalate",
    "new_alert_id",
    "parse_resolution",
    "resolve",
]

ALERT_ID_RE = re.compile(r"^[0-9a-f]{24}$")
MAX_NOTE = 1000
SYSTEM = "system"  # the actor of transitions the server makes itself


class AlertKind(StrEnum):
    EMERGENCY = "emergency"
    KEYWORD = "keyword"
    TRANSCRIPTION = "transcription"


class AlertState(StrEnum):
    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    VALID = "valid"
    FALSE_ALARM = "false_alarm"


class AlertError(Exception):
    """A refused alert operation: a stable ``code``, a one-line message and an HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Alert:
    id: str
    kind: AlertKind
    channel: str  # "" for a deployment-wide alert (transcription)
    state: AlertState
    raised_ms: int
    raised_by: str  # the user who raised it, or "system"
    subject: str = ""  # who it is about: the raiser, the speaker
    subject_name: str = ""
    keyword: str = ""
    utterance: str = ""  # the burst id a keyword alert points at
    detail: dict[str, Any] = dataclasses.field(default_factory=dict)
    dedupe: str | None = None  # unique while set (see store)
    acked_ms: int | None = None
    acked_by: str = ""
    acked_by_name: str = ""
    resolved_ms: int | None = None
    resolved_by: str = ""
    resolved_by_name: str = ""
    resolution: str = ""
    note: str = ""
    escalated: bool = False
    updated_ms: int = 0

    @property
    def open(self) -> bool:
        return self.state is not AlertState.RESOLVED

    def detail_json(self) -> str:
        return json.dumps(self.detail, ensure_ascii=False, sort_keys=True)


def new_alert_id(now_ms: int) -> str:
    """24 hex digits: the time in ms (11 digits, sortable) and 13 random ones."""
    return f"{now_ms:011x}"[-11:] + secrets.token_hex(7)[:13]


def acknowledge(alert: Alert, by: str, by_name: str, now_ms: int) -> Alert:
    if alert.state is not AlertState.RAISED:
        raise AlertError("alert_state", f"the alert is already {alert.state.value}", 409)
    return dataclasses.replace(
        alert,
        state=AlertState.ACKNOWLEDGED,
        acked_ms=now_ms,
        acked_by=by,
        acked_by_name=by_name,
        updated_ms=now_ms,
    )


def clean_note(note: object) -> str:
    if not isinstance(note, str):
        raise AlertError("bad_note", "note must be text")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise AlertError("bad_note", f"note is longer than {MAX_NOTE} characters")
    if any(ord(c) < 32 and c not in "\n\t" for c in note):
        raise AlertError("bad_note", "note contains control characters")
    return note


def parse_resolution(value: object) -> Resolution:
    try:
        return Resolution(str(value))
    except ValueError:
        raise AlertError("bad_resolution", "resolution must be valid or false_alarm") from None


def resolve(
    alert: Alert, by: str, by_name: str, resolution: Resolution, note: str, now_ms: int
) -> Alert:
    if alert.state is AlertState.RESOLVED:
        raise AlertError("alert_state", "the alert is already resolved", 409)
    acked = alert.state is AlertState.ACKNOWLEDGED
    return dataclasses.replace(
        alert,
        state=AlertState.RESOLVED,
        acked_ms=alert.acked_ms if acked else now_ms,
        acked_by=alert.acked_by if acked else by,
        acked_by_name=alert.acked_by_name if acked else by_name,
        resolved_ms=now_ms,
        resolved_by=by,
        resolved_by_name=by_name,
        resolution=resolution.value,
        note=note,
        dedupe=None if alert.kind is not AlertKind.KEYWORD else alert.dedupe,
        updated_ms=now_ms,
    )


def escalate(alert: Alert, now_ms: int) -> Alert:
    """An emergency nobody acknowledged in time: shown to every supervisor and admin."""
    if alert.state is not AlertState.RAISED or alert.escalated:
        raise AlertError("alert_state", "only a raised alert escalates", 409)
    return dataclasses.replace(alert, escalated=True, updated_ms=now_ms)
