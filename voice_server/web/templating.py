"""Server-rendered pages: one Jinja2 environment with autoescaping on (user text is always text).

Pages get ``t`` (the UI text of the negotiated language), ``lang``, ``csrf`` (for forms),
``actor`` and ``nav`` (the entries this actor may use: later features add theirs to
:data:`NAV`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from voice_server.web import security
from voice_server.web.auth import app_state
from voice_server.web.i18n import negotiate, translator
from voice_server.web.policy import Action, Actor, may_any

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
ENV = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class NavEntry:
    path: str
    label: str  # an i18n key
    action: Action


# The dashboard's navigation, in order; an entry shows when the policy allows its action (the
# call-log entries: on at least one channel, ``policy.may_any``).
NAV: list[NavEntry] = [
    NavEntry("/dashboard/alerts", "alerts", Action.DASHBOARD),
    NavEntry("/dashboard/search", "search", Action.SEARCH),
    NavEntry("/dashboard/live", "live", Action.LIVE),
    NavEntry("/dashboard/console", "console", Action.LIVE),
    NavEntry("/dashboard/announcements", "announcements", Action.ANNOUNCE),
    NavEntry("/dashboard/codes", "codes", Action.DASHBOARD),
    NavEntry("/dashboard/users", "users", Action.USERS_VIEW),
    NavEntry("/dashboard/channels", "channels", Action.CHANNELS_VIEW),
    NavEntry("/dashboard/phrases", "asr_phrases", Action.CHANNELS_VIEW),
    NavEntry("/dashboard/alert-keywords", "alert_keywords", Action.CHANNELS_MANAGE),
    NavEntry("/dashboard/webhooks", "webhooks", Action.CHANNELS_MANAGE),
    NavEntry("/dashboard/audit", "audit", Action.AUDIT_VIEW),
    NavEntry("/dashboard/admin/network", "network", Action.NETWORK_VIEW),
    NavEntry("/dashboard/about", "about", Action.DASHBOARD),
]


def visible(actor: Actor | None) -> list[NavEntry]:
    return [e for e in NAV if may_any(actor, e.action)]


def language(request: Request) -> str:
    return negotiate(
        request.headers.get("accept-language"), request.cookies.get(security.LANG_COOKIE)
    )


def transcription_notice(request: Request, actor: Actor | None) -> str | None:
    """The state to warn a signed-in dashboard user about (``degraded``/``stopped``), or None:
    a supervisor must not take an empty or late call log for a quiet one."""
    if actor is None or not may_any(actor, Action.DASHBOARD):
        return None
    state = app_state(request).transcription.state.value
    return state if state in ("degraded", "stopped") else None


def render(
    request: Request,
    template: str,
    *,
    actor: Actor | None,
    csrf: str,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    lang = language(request)
    html = ENV.get_template(template).render(
        t=translator(lang),
        lang=lang,
        other_lang="en" if lang == "ja" else "ja",
        csrf=csrf,
        actor=actor,
        nav=visible(actor),
        path=request.url.path,
        public=app_state(request).config.public_url,
        transcription=transcription_notice(request, actor),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
