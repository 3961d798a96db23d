"""Shared plumbing of the dashboard pages: guards that answer with pages, not JSON."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from voice_server.web.auth import Auth
from voice_server.web.common import require
from voice_server.web.policy import Action, Actor, TargetUser
from voice_server.web.templating import render


class PageExit(Exception):
    """Leave a page handler with this response (a redirect to sign in, a refusal page)."""

    def __init__(self, response: Response) -> None:
        super().__init__("page exit")
        self.response = response


async def page_exit_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageExit)
    return exc.response


def csrf_of(auth: Auth) -> str:
    return auth.session.csrf if auth.session is not None else ""


def guard(
    request: Request,
    auth: Auth,
    action: Action,
    *,
    channel: str | None = None,
    target: TargetUser | None = None,
    audit_target: str = "",
) -> Actor:
    """``require`` for pages: nobody → the sign-in page; refused → a 403 page."""
    if auth.actor is None:
        next_path = quote(request.url.path, safe="/")
        raise PageExit(RedirectResponse(f"/signin?next={next_path}", status_code=303))
    try:
        return require(
            request, auth, action, channel=channel, target=target, audit_target=audit_target
        )
    except HTTPException:
        raise PageExit(
            render(
                request,
                "error.html",
                actor=auth.actor,
                csrf=csrf_of(auth),
                status_code=403,
                message_key="forbidden",
            )
        ) from None


def done(path: str) -> RedirectResponse:
    """Post/redirect/get after a successful change."""
    return RedirectResponse(f"{path}?done=1", status_code=303)
