"""Who sees and handles which alert [pure], and an alert as the API and the feed show it.

- Staff see none in the dashboard (they raise and cancel their own emergencies elsewhere).
- Supervisors and admins see and handle the alerts of the channels they supervise, every
  deployment-wide alert (transcription), and every escalated alert (an emergency nobody
  acknowledged in time goes to every supervisor and admin).
- A keyword alert's text and clip are a call-log read: the detail page goes through
  ``web.calllog_access.view`` (policy ``calllog.view``, audited); the feed and the list carry
  no transcript text.
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from voice_server.alerts.model import Alert
from voice_server.alerts.store import AlertFilter
from voice_server.calllog.model import iso
from voice_server.identity.tokens import Role
from voice_server.web.policy import Actor, Decision

__all__ = ["alert_json", "may_handle", "may_see", "scope"]


def may_see(actor: Actor | None, alert: Alert) -> bool:
    if actor is None or actor.role is Role.STAFF:
        return False
    return alert.channel == "" or alert.channel in actor.supervised or alert.escalated


def may_handle(actor: Actor | None, alert: Alert) -> Decision:
    if actor is None:
        return Decision(False, "sign in first")
    if actor.role is Role.STAFF:
        return Decision(False, "alerts are handled by supervisors")
    if may_see(actor, alert):
        return Decision(True)
    return Decision(False, "not a channel you supervise")


def scope(actor: Actor, **filters: Any) -> AlertFilter | None:
    """The store filter of what ``actor`` may see (None: nothing at all)."""
    if actor.role is Role.STAFF:
        return None
    channels = None if actor.supervised.everything else actor.supervised.names
    return AlertFilter(channels=channels, include_deployment=True, escalated_too=True, **filters)


def _by(name: str, sub: str, ms: int | None, tz: tzinfo) -> dict[str, Any] | None:
    if ms is None:
        return None
    return {"by": sub, "name": name, "at": iso(ms, tz), "at_ms": ms}


def alert_json(alert: Alert, tz: tzinfo) -> dict[str, Any]:
    resolved = _by(alert.resolved_by_name, alert.resolved_by, alert.resolved_ms, tz)
    if resolved is not None:
        resolved.update(resolution=alert.resolution, note=alert.note)
    location = alert.detail.get("location")
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "channel": alert.channel,
        "state": alert.state.value,
        "raised": iso(alert.raised_ms, tz),
        "raised_ms": alert.raised_ms,
        "raised_by": alert.raised_by,
        "subject": alert.subject,
        "subject_name": alert.subject_name,
        "keyword": alert.keyword,
        "utterance": alert.utterance or None,
        "location": location if isinstance(location, dict) else None,
        "escalated": alert.escalated,
        "acknowledged": _by(alert.acked_by_name, alert.acked_by, alert.acked_ms, tz),
        "resolved": resolved,
    }
