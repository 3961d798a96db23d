"""A blocking HTTP GET for the benchmarks' polling of ``/readyz`` and ``/metrics``, on the
standard library (the runtime installs no HTTP client library; ``make run`` must not need one).
"""

from __future__ import annotations

import urllib.error
import urllib.request

__all__ = ["HttpError", "get_text"]


class HttpError(Exception):
    """The server could not be reached or answered with an error status."""


def get_text(url: str, *, timeout: float = 5.0) -> tuple[int, str]:
    """``(status, body)`` of a GET; :class:`HttpError` when nothing usable came back."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise HttpError(str(exc)) from exc
