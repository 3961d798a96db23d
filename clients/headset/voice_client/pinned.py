"""The version check every seam into aiortc/aioice internals starts with (loopback, opus,
turntls): a seam written against one release refuses any other, loudly."""

from __future__ import annotations

from types import ModuleType

__all__ = ["require_version"]


def require_version(package: ModuleType, supported: str, seam: str, recheck: str) -> None:
    """RuntimeError unless ``package.__version__`` is ``supported``; ``recheck`` names the
    internals to re-read before updating ``seam``."""
    version = getattr(package, "__version__", None)
    if version != supported:
        raise RuntimeError(
            f"{seam} supports {package.__name__} {supported} only, found {version}: "
            f"re-check {recheck} and update the seam"
        )
