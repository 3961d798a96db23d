"""Web security plumbing: response headers, cookies and the CSRF check.

- Every response gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``
  and ``X-Frame-Options: DENY``; every HTML response a Content-Security-Policy with no inline
  script or style (``script-src 'self'``) and ``frame-ancestors 'none'``, unless the route set
  its own.
- Cookies: HttpOnly, SameSite=Strict, Path=/; Secure (with the ``__Host-`` prefix) when served
  over HTTPS or ``public_url`` is HTTPS, or as ``cookie_secure`` says.
- CSRF: every state-changing request (POST, PUT, PATCH, DELETE) authenticated by a session
  cookie must carry that session's token (``X-CSRF-Token`` header or ``csrf`` form field);
  before sign-in, the pre-session cookie's value (double submit), which ``GET /signin`` and
  ``GET /api/v1/auth/session`` hand out. Requests with an ``Authorization: Bearer`` API token
  carry no ambient credential and need none.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voice_server.config import Config

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


class SecurityHeaders:
    """Pure ASGI middleware (no body buffering): adds the headers to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _COMMON if k not in names]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_secure(config: Config, request: HTTPConnection) -> bool:
    if config.cookie_secure is not None:
        return config.cookie_secure
    scheme = request.url.scheme
    return scheme in ("https", "wss") or (config.public_url or "").startswith("https://")


def cookie_name(base: str, secure: bool) -> str:
    return f"__Host-{base}" if secure else base


SESSION_COOKIE = "vs_session"
PRE_COOKIE = "vs_pre"
LANG_COOKIE = "vs_lang"


def read_cookie(config: Config, request: HTTPConnection, base: str) -> str | None:
    return request.cookies.get(cookie_name(base, is_secure(config, request)))


def set_cookie(
    config: Config,
    request: Request,
    response: Response,
    base: str,
    value: str,
    max_age: int | None,
    *,
    http_only: bool = True,
) -> None:
    secure = is_secure(config, request)
    response.set_cookie(
        cookie_name(base, secure),
        value,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=http_only,
        samesite="strict",
    )


def clear_cookie(config: Config, request: Request, response: Response, base: str) -> None:
    secure = is_secure(config, request)
    response.delete_cookie(
        cookie_name(base, secure), path="/", secure=secure, httponly=True, samesite="strict"
    )


def pre_session_token(config: Config, request: Request, response: Response) -> str:
    """The pre-session CSRF value for forms and fetches made before signing in."""
    value = read_cookie(config, request, PRE_COOKIE)
    if not value or len(value) > 64:
        value = secrets.token_urlsafe(24)
    set_cookie(config, request, response, PRE_COOKIE, value, 86400)
    return value


def check_csrf(expected: str | None, presented: str | None) -> None:
    """Raise 403 unless ``presented`` equals ``expected`` (constant time)."""
    if (
        not expected
        or not presented
        or not hmac.compare_digest(expected.encode(), presented.encode())
    ):
        raise HTTPException(
            status_code=403, detail={"code": "csrf", "message": "missing or wrong CSRF token"}
        )


def same_origin(config: Config, conn: HTTPConnection) -> bool:
    """A browser's WebSocket handshake came from our own pages: its ``Origin`` is this server
    as the browser addressed it (``Host``), or ``public_url`` (behind a TLS proxy). Stops
    cross-site WebSocket hijacking with the ambient session cookie."""
    origin = conn.headers.get("origin")
    if not origin:
        return False
    scheme = "https" if conn.url.scheme in ("https", "wss") else "http"
    allowed = {f"{scheme}://{conn.headers.get('host', '')}".lower()}
    if config.public_url:
        public = urlsplit(config.public_url)
        allowed.add(f"{public.scheme}://{public.netloc}".lower())
    return origin.lower() in allowed
