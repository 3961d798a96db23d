"""What webhooks send and when [pure]: event types of an alert transition, the payload (no
transcript text), the retry schedule, the endpoint URL rules."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from voice_server.alerts.model import Alert, AlertKind

__all__ = [
    "BACKOFF_S",
    "EVENT_TYPES",
    "MAX_QUEUE",
    "WebhookError",
    "check_events",
    "check_url",
    "event_types",
    "next_delay",
    "payload",
]

EVENT_TYPES = (
    "emergency.raised",
    "emergency.resolved",
    "keyword_alert.raised",
    "transcription.stopped",
    "announcement.sent",
)
#: seconds before each retry: 10 retries over about an hour, then the dead-letter list
BACKOFF_S = (10, 30, 60, 120, 300, 420, 600, 600, 600, 660)
MAX_QUEUE = 10_000  # deliveries waiting (queued) in the whole deployment
MAX_ENDPOINTS = 50


class WebhookError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def event_types(alert: Alert, transition: str) -> list[str]:
    """The event types an alert's transition (raised, acknowledged, resolved, escalated)
    sends."""
    if transition == "raised":
        return {
            AlertKind.EMERGENCY: ["emergency.raised"],
            AlertKind.KEYWORD: ["keyword_alert.raised"],
            AlertKind.TRANSCRIPTION: ["transcription.stopped"],
        }[alert.kind]
    if transition == "resolved" and alert.kind is AlertKind.EMERGENCY:
        return ["emergency.resolved"]
    return []


def payload(event_type: str, alert: Alert, timestamp: str, dashboard: str | None) -> dict[str, Any]:
    """The JSON body: who, where, when, which keyword and utterance (never its text: reading
    the text is an audited read in the dashboard, linked here)."""
    data: dict[str, Any] = {
        "alert_id": alert.id,
        "kind": alert.kind.value,
        "state": alert.state.value,
        "channel": alert.channel or None,
        "raised_ms": alert.raised_ms,
        "subject": alert.subject or None,
        "subject_name": alert.subject_name or None,
    }
    if alert.keyword:
        data.update(keyword=alert.keyword, utterance_id=alert.utterance)
    location = alert.detail.get("location")
    if isinstance(location, dict):
        data["location"] = location
    if alert.resolution:
        data.update(resolution=alert.resolution, resolved_by=alert.resolved_by)
    if dashboard:
        data["url"] = f"{dashboard.rstrip('/')}/dashboard/alerts/{alert.id}"
    return {"type": event_type, "timestamp": timestamp, "data": data}


def announcement_payload(
    announcement_id: str,
    author: tuple[str, str],
    text: str,
    urgent: bool,
    channels: Iterable[str],
    timestamp: str,
    dashboard: str | None,
) -> dict[str, Any]:
    """``announcement.sent``: an announcement finished playing in ``channels`` (the ones it
    reached). Its typed text is included: it is what the headquarters said, not a transcript
    of staff."""
    data: dict[str, Any] = {
        "announcement_id": announcement_id,
        "author": author[0],
        "author_name": author[1],
        "text": text,
        "urgent": urgent,
        "channels": sorted(channels),
    }
    if dashboard:
        data["url"] = f"{dashboard.rstrip('/')}/dashboard/announcements"
    return {"type": "announcement.sent", "timestamp": timestamp, "data": data}


def next_delay(attempts: int, backoff: tuple[int, ...] = BACKOFF_S) -> int | None:
    """Seconds until the next try after ``attempts`` failed ones; None: give up."""
    return backoff[attempts - 1] if 1 <= attempts <= len(backoff) else None


def check_events(events: object) -> list[str]:
    if not isinstance(events, list) or not events:
        raise WebhookError("bad_events", "events is a non-empty list of " + ", ".join(EVENT_TYPES))
    out = []
    for e in events:
        if e not in EVENT_TYPES:
            raise WebhookError("bad_events", f"unknown event type {str(e)[:40]!r}")
        if e not in out:
            out.append(e)
    return out


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


def check_url(url: object, own: Iterable[tuple[str, int]]) -> str:
    """An endpoint URL: http(s), a host, no credentials, not this server (``own``: the
    (host, port) pairs it answers on; loopback and unspecified addresses count as any of
    its hosts)."""
    if not isinstance(url, str) or len(url) > 2000:
        raise WebhookError("bad_url", "url must be text of at most 2000 characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise WebhookError("bad_url", "url is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("bad_url", "url must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise WebhookError("bad_url", "no credentials in the URL (secrets never go in URLs)")
    host = parts.hostname.lower()
    target = _port(parts.scheme, port)
    for own_host, own_port in own:
        if own_port == target and (host == own_host.lower() or (_local(host) and _local(own_host))):
            raise WebhookError("self_url", "a webhook may not point at this server")
    return url.strip()


def _local(host: str) -> bool:
    if host in ("localhost", "0.0.0.0", "::"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified
