"""The phone web client: static files under ``clients/web`` served at ``/``.

Every file is sent with the client's own Content-Security-Policy (:data:`CSP`: no inline script
or style, connections only to its own origin including its WebSocket, its manifest, worker and
audio worklet) and a Permissions-Policy allowing the microphone, set by the route itself so a
site-wide security middleware that adds a CSP only where none is set leaves them alone. Files
are sent with ``Cache-Control: no-cache`` (revalidated with their ETag on every load) so an update
reaches phones on the next load; the service worker is network-first too.

:class:`CommonHeaders` adds the headers every response should carry (``nosniff``,
``no-referrer``, ``DENY`` framing).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CSP", "PERMISSIONS", "CommonHeaders", "find_web_dir", "web_files"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

PERMISSIONS = "microphone=(self), camera=(), geolocation=(), payment=()"

_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def find_web_dir(configured: Path | None = None) -> Path | None:
    """The client's directory: the configured one, else ``clients/web`` of this source tree or
    of the working directory (the container image runs from the source tree)."""
    if configured is not None:
        return configured if (configured / "index.html").is_file() else None
    here = Path(__file__).resolve().parents[2] / "clients" / "web"
    for candidate in (here, Path.cwd() / "clients" / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return None


class _NoCacheStatic(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        response.headers["cache-control"] = "no-cache"
        response.headers["content-security-policy"] = CSP
        response.headers["permissions-policy"] = PERMISSIONS
        response.headers["cross-origin-opener-policy"] = "same-origin"
        if path.endswith(".webmanifest"):
            response.headers["content-type"] = "application/manifest+json"
        return response


def web_files(directory: Path) -> StaticFiles:
    return _NoCacheStatic(directory=directory, html=True)


class CommonHeaders:
    """ASGI middleware adding nosniff, no-referrer and DENY framing to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _HEADERS if h[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
