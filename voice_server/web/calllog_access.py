"""The one access path to the call log, for the REST API and the dashboard alike: who is asking
(``web.auth``), whether they may (``web.policy`` through ``web.common.require``, refusals audited),
the store, and one audit row per read: every search (query, filters, result count), transcript
view, clip URL issued, direct clip fetch and export. Never any transcript text in the audit log.

A clip URL is audited when it is *issued* (``calllog.play``, one row per URL), not when the
browser fetches it (an ``<audio>`` element makes many range requests).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request

from voice_server.calllog.model import (
    MAX_LIMIT,
    SearchQuery,
    Utterance,
    decode_cursor,
    encode_cursor,
    iso,
)
from voice_server.identity.derived import CLIP_PURPOSE, derive_key, mac_hex
from voice_server.state import AppState
from voice_server.web.auth import Auth, app_state, client_address, unauthorized
from voice_server.web.common import require
from voice_server.web.policy import Action, Actor, channels_for

__all__ = [
    "Filters",
    "Found",
    "Hit",
    "clip_signature",
    "export_items",
    "fetch_clip",
    "scope",
    "search",
    "view",
]


@dataclass(frozen=True, slots=True)
class Filters:
    q: str | None = None
    channel: str | None = None
    speaker: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def audit(self, state: AppState) -> dict[str, Any]:
        """The filters as the audit log and export headers show them (no transcript text)."""
        tz = state.config.zone
        out: dict[str, Any] = {}
        if self.channel:
            out["channel"] = self.channel
        if self.speaker:
            out["speaker"] = self.speaker
        if self.since_ms is not None:
            out["since"] = iso(self.since_ms, tz)
        if self.until_ms is not None:
            out["until"] = iso(self.until_ms, tz)
        return out

    def query(
        self, channels: frozenset[str], *, before: int | None = None, limit: int = 50
    ) -> SearchQuery:
        return SearchQuery(
            channels=channels,
            speaker=self.speaker,
            q=self.q,
            since_ms=self.since_ms,
            until_ms=self.until_ms,
            before_rowid=before,
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class Hit:
    utterance: Utterance
    clip_url: str | None


@dataclass(frozen=True, slots=True)
class Found:
    actor: Actor
    hits: list[Hit]
    next_cursor: str | None
    channels: frozenset[str]


def clip_signature(key: bytes, burst_id: str, exp: int) -> str:
    return mac_hex(derive_key(key, CLIP_PURPOSE), f"{burst_id}.{exp}")


def _target(channels: frozenset[str], channel: str | None) -> str:
    if channel:
        return f"channel:{channel}"
    return "channels:" + ",".join(sorted(channels))


def scope(
    request: Request, auth: Auth, action: Action, channel: str | None
) -> tuple[Actor, frozenset[str]]:
    """The actor and the channels ``action`` covers: the one asked for, or every channel the
    actor may ``action``. Nobody → 401; not allowed or nothing allowed → 403 (audited)."""
    if channel is not None:
        return require(request, auth, action, channel=channel), frozenset({channel})
    if auth.actor is None:
        raise unauthorized("sign in first")
    known = [c.name for c in app_state(request).channels.list()]
    allowed = channels_for(auth.actor, action, known)
    if not allowed:
        require(request, auth, action, audit_target="calllog")  # refuses (audited) and raises
        raise unauthorized("no channel")  # not reached: the policy refuses a channel-less ask
    return auth.actor, frozenset(allowed)


def _issue(
    state: AppState, actor: Actor, address: str, hits: list[Utterance], conn: Any
) -> list[Hit]:
    """Signed clip URLs for ``hits``, each audited as ``calllog.play`` (caller's transaction)."""
    exp = int(time.time()) + state.config.clip_url_seconds
    out = []
    for u in hits:
        url = None
        if u.clip:
            url = f"/api/v1/clips/{u.id}.ogg?exp={exp}&sig={clip_signature(state.key, u.id, exp)}"
            state.accounts.audit.record(
                actor,
                Action.PLAY.value,
                f"utterance:{u.id}",
                {"channel": u.channel, "expires": iso(exp * 1000, state.config.zone)},
                address=address,
                conn=conn,
            )
        out.append(Hit(u, url))
    return out


def search(
    request: Request, auth: Auth, filters: Filters, *, cursor: str | None, limit: int = 50
) -> Found:
    """One page of hits, newest first, with signed clip URLs; audited (search + each URL)."""
    state = app_state(request)
    actor, channels = scope(request, auth, Action.SEARCH, filters.channel)
    try:
        before = decode_cursor(cursor) if cursor else None
        query = filters.query(channels, before=before, limit=limit)
    except ValueError as exc:
        raise HTTPException(400, {"code": "invalid_parameter", "message": str(exc)}) from None
    page = state.calllog.search(query)
    address = client_address(request)
    with state.db.transaction() as conn:
        state.accounts.audit.record(
            actor,
            Action.SEARCH.value,
            _target(channels, filters.channel),
            {
                "query": filters.q or "",
                "filters": filters.audit(state),
                "results": len(page.items),
                "more": page.next_rowid is not None,
                "page": "next" if cursor else "first",
            },
            address=address,
            conn=conn,
        )
        hits = _issue(state, actor, address, list(page.items), conn)
    next_cursor = encode_cursor(page.next_rowid) if page.next_rowid is not None else None
    return Found(actor, hits, next_cursor, channels)


def view(request: Request, auth: Auth, burst_id: str) -> tuple[Actor, Hit]:
    """One transcript with its clip URL; audited (view + the URL)."""
    state = app_state(request)
    if auth.actor is None:
        raise unauthorized("sign in first")
    utterance = state.calllog.get(burst_id)
    if utterance is None:
        raise HTTPException(404, {"code": "not_found", "message": "no such utterance"})
    actor = require(request, auth, Action.VIEW, channel=utterance.channel)
    address = client_address(request)
    with state.db.transaction() as conn:
        state.accounts.audit.record(
            actor,
            Action.VIEW.value,
            f"utterance:{burst_id}",
            {"channel": utterance.channel},
            address=address,
            conn=conn,
        )
        hit = _issue(state, actor, address, [utterance], conn)[0]
    return actor, hit


def fetch_clip(request: Request, auth: Auth, utterance: Utterance) -> None:
    """A clip fetched with a session or an API token instead of a signed URL: allowed and
    audited per request (signed URLs were audited when issued)."""
    actor = require(request, auth, Action.PLAY, channel=utterance.channel)
    app_state(request).accounts.audit.record(
        actor,
        Action.PLAY.value,
        f"utterance:{utterance.id}",
        {"channel": utterance.channel, "via": actor.via},
        address=client_address(request),
    )


def export_items(
    request: Request, auth: Auth, filters: Filters, fmt: str
) -> tuple[Actor, list[Utterance], bool]:
    """Every hit of a filtered search (up to ``export_max_rows``), newest first; audited once
    with the query, filters, format and count."""
    state = app_state(request)
    actor, channels = scope(request, auth, Action.EXPORT, filters.channel)
    cap = state.config.export_max_rows
    items: list[Utterance] = []
    before: int | None = None
    truncated = False
    while True:
        page = state.calllog.search(filters.query(channels, before=before, limit=MAX_LIMIT))
        items += page.items
        if page.next_rowid is None:
            break
        if len(items) >= cap:
            truncated = True
            break
        before = page.next_rowid
    if len(items) > cap:
        items, truncated = items[:cap], True
    state.accounts.audit.record(
        actor,
        Action.EXPORT.value,
        _target(channels, filters.channel),
        {
            "query": filters.q or "",
            "filters": filters.audit(state),
            "results": len(items),
            "format": fmt,
            "truncated": truncated,
        },
        address=client_address(request),
    )
    return actor, items, truncated
