"""The phone web client: static files under ``clients/web`` served at ``/``.

Every file is sent with the client's own Content-Security-Policy (:data:`CSP`: no inline script
or style, connections only to its own origin including its WebSocket, its manifest, worker and
audio worklet) and a Permissions-Policy allowing the microphone, set by the route itself so a
site-wide security middleware that adds a CSP only where none is set leaves them alone. Files
are sent with ``Cache-Control: no-cache`` (revalidated with their ETag on every load) so an update
reaches phones on the next load; the service worker is network-first too.

The headers every response carries (``nosniff``, ``no-referrer``, framing) come from
:class:`voice_server.web.security.SecurityHeaders`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.staticfiles import StaticFiles
from starlette.types import Scope

__all__ = ["CSP", "PERMISSIONS", "find_web_dir", "web_files"]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self'; "
    "manifest-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# geolocation: the emergency control sends the location when the user opted in (per device)
PERMISSIONS = "microphone=(self), camera=(), geolocation=(self), payment=()"


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
