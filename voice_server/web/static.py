"""The phone web client: static files under ``clients/web`` served at ``/``, and the security
headers every HTTP response carries (a strict Content-Security-Policy: the client has no inline
script or style, and talks only to its own origin).

Static files are sent with ``Cache-Control: no-cache`` (revalidated with their ETag on every
load) so an update reaches phones on the next load; the service worker is network-first too.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders", "find_web_dir", "web_files"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"microphone=(self), camera=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
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
        if path.endswith(".webmanifest"):
            response.headers["content-type"] = "application/manifest+json"
        return response


def web_files(directory: Path) -> StaticFiles:
    return _NoCacheStatic(directory=directory, html=True)


class SecurityHeaders:
    """ASGI middleware adding the security headers to every HTTP response."""

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
