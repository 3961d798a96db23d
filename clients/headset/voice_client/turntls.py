"""Seam: TURN over TLS (``turns:``) that trusts a given CA (aiortc 1.16.0 / aioice 0.13.0 only).

aiortc turns a ``turns:HOST:PORT?transport=tcp`` ICE server into ``turn_ssl=True`` for aioice,
which opens the TLS connection with Python's default context: the system's CAs only. A TURN
relay whose certificate an organisation's own CA signed (or a test CA) is then refused.

:func:`turn_tls_context` replaces ``aiortc.rtcicetransport.connection_kwargs`` for the duration
of a ``with`` block by a wrapper that hands aioice an :class:`ssl.SSLContext` instead of
``True`` (aioice passes it to ``loop.create_connection(ssl=...)``, which still checks the
certificate and the host name). Process-wide while the block runs; the voice client runs one
peer at a time. Pinned like :mod:`voice_client.loopback`: :func:`check_aiortc` refuses other
versions, and ``tests/unit/test_client_turntls.py`` fails loudly if the seam's targets change.
"""

from __future__ import annotations

import inspect
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiortc
import aiortc.rtcicetransport

from voice_client.pinned import require_version

__all__ = [
    "SUPPORTED_AIORTC",
    "check_aiortc",
    "client_context",
    "relay_selected",
    "turn_tls_context",
]

SUPPORTED_AIORTC = "1.16.0"
_PATCHED = "connection_kwargs"


def check_aiortc() -> None:
    """Raise RuntimeError unless the installed aiortc has the internals this seam replaces."""
    require_version(
        aiortc, SUPPORTED_AIORTC, "voice_client.turntls", "aiortc.rtcicetransport.connection_kwargs"
    )
    original = getattr(aiortc.rtcicetransport, _PATCHED, None)
    if not callable(original):
        raise RuntimeError("aiortc.rtcicetransport.connection_kwargs is gone: update the seam")
    if list(inspect.signature(original).parameters) != ["servers"]:
        raise RuntimeError("aiortc.rtcicetransport.connection_kwargs changed: update the seam")


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """A TLS client context trusting ``ca_file`` (PEM) besides the system's CAs; OSError or
    ssl.SSLError when the file cannot be read or holds no certificate."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _replacement(
    original: Callable[[Any], dict[str, Any]], context: ssl.SSLContext
) -> Callable[[Any], dict[str, Any]]:
    def connection_kwargs(servers: Any) -> dict[str, Any]:
        kwargs = original(servers)
        if kwargs.get("turn_ssl") is True:
            kwargs["turn_ssl"] = context
        return kwargs

    return connection_kwargs


def relay_selected(pc: Any) -> bool:
    """Whether ``pc``'s media goes through the TURN relay: the local candidate of the pair aioice
    nominated is a relay candidate (aioice internals, same pin; False when unknown)."""
    for transceiver in pc.getTransceivers():
        ice = getattr(getattr(transceiver.sender, "transport", None), "transport", None)
        connection = getattr(getattr(ice, "iceGatherer", None), "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1)
        if pair is not None:
            return getattr(pair.local_candidate, "type", "") == "relay"
    return False


@contextmanager
def turn_tls_context(context: ssl.SSLContext) -> Iterator[None]:
    """Within the block, aioice opens ``turns:`` relays with ``context``."""
    check_aiortc()
    original = getattr(aiortc.rtcicetransport, _PATCHED)
    setattr(aiortc.rtcicetransport, _PATCHED, _replacement(original, context))
    try:
        yield
    finally:
        setattr(aiortc.rtcicetransport, _PATCHED, original)
