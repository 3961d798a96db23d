"""Seam: let aioice gather ICE host candidates on loopback addresses (aioice 0.13.0 only).

aioice never offers 127.0.0.1 or ::1 as a host candidate: ``aioice.ice.get_host_addresses``
skips them. On a machine (or a test) where the server is on 127.0.0.0/8 the client then gathers
no candidate that can reach it, and ICE stays "new" forever.

:func:`loopback_candidates` replaces that module-level function for the duration of a ``with``
block. ``aioice.ice.Connection.gather_candidates`` looks the name up in its module globals on
every call, so the replacement applies to every connection that gathers inside the block (it is
process-wide: do not run it concurrently with peers that must not use loopback).

This reaches into aioice internals, so it is pinned: :func:`check_aioice` refuses any aioice
other than the version it was written against, and the unit test
``tests/unit/test_client_loopback.py`` fails loudly if the function or its call site changes.
"""

from __future__ import annotations

import inspect
import ipaddress
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import aioice
import aioice.ice

from voice_client.pinned import require_version

__all__ = [
    "SUPPORTED_AIOICE",
    "check_aioice",
    "install_loopback_candidates",
    "is_loopback_host",
    "loopback_candidates",
]

SUPPORTED_AIOICE = "0.13.0"
_PATCHED = "get_host_addresses"


def check_aioice() -> None:
    """Raise RuntimeError unless the installed aioice has the internals this seam replaces."""
    require_version(
        aioice, SUPPORTED_AIOICE, "voice_client.loopback", "aioice.ice.get_host_addresses"
    )
    original = getattr(aioice.ice, _PATCHED, None)
    if not callable(original):
        raise RuntimeError("aioice.ice.get_host_addresses is gone: update voice_client.loopback")
    params = list(inspect.signature(original).parameters)
    if params != ["use_ipv4", "use_ipv6"]:
        raise RuntimeError(f"aioice.ice.get_host_addresses{params} changed: update the seam")


def _replacement(
    original: Callable[[bool, bool], list[str]], addresses: Sequence[str], only: bool
) -> Callable[[bool, bool], list[str]]:
    check_aioice()
    for a in addresses:
        if not ipaddress.ip_address(a).is_loopback:
            raise ValueError(f"{a} is not a loopback address")

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        found = [] if only else list(original(use_ipv4, use_ipv6))
        for a in addresses:
            version = ipaddress.ip_address(a).version
            if ((version == 4 and use_ipv4) or (version == 6 and use_ipv6)) and a not in found:
                found.append(a)
        return found

    return get_host_addresses


def install_loopback_candidates(
    addresses: Sequence[str] = ("127.0.0.1",), *, only: bool = True
) -> None:
    """For the rest of this process, aioice gathers host candidates on ``addresses``
    (benchmark child processes that only ever talk on loopback)."""
    original: Callable[[bool, bool], list[str]] = getattr(aioice.ice, _PATCHED)
    setattr(aioice.ice, _PATCHED, _replacement(original, addresses, only))


@contextmanager
def loopback_candidates(
    addresses: Sequence[str] = ("127.0.0.1",), *, only: bool = True
) -> Iterator[None]:
    """Within the block, aioice gathers host candidates on ``addresses``.

    ``only=True`` gathers on these addresses alone (no pairs from other interfaces towards a
    loopback server); ``only=False`` adds them to what aioice would gather anyway.
    """
    original: Callable[[bool, bool], list[str]] = getattr(aioice.ice, _PATCHED)
    setattr(aioice.ice, _PATCHED, _replacement(original, addresses, only))
    try:
        yield
    finally:
        setattr(aioice.ice, _PATCHED, original)


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address (127/8, ::1).

    Uses the system resolver (``localhost`` and literal addresses need no network).
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_UDP)
    except OSError:
        return False
    addrs = {str(info[4][0]).split("%")[0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)
