"""Make aiortc peers gather a 127.0.0.1 host candidate (benchmarks and tests only).

aioice 0.13 skips 127.0.0.1 and ::1 when it lists host addresses
(``aioice.ice.get_host_addresses(use_ipv4, use_ipv6) -> list[str]``, looked up as a module global
by ``Connection.gather_candidates``), so two aiortc peers on one machine with no other interface
never connect, and on a machine with other interfaces they would use them. Replacing that
function in the benchmark processes keeps every candidate, and so all media, on 127.0.0.1.
Never used by the server itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aioice.ice

__all__ = ["LOOPBACK", "loopback_candidates", "use_loopback_candidates"]

LOOPBACK = "127.0.0.1"


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return [LOOPBACK] if use_ipv4 else []


def use_loopback_candidates() -> None:
    """Patch aioice for the rest of this process (for benchmark child processes)."""
    aioice.ice.get_host_addresses = _loopback_only


@contextmanager
def loopback_candidates() -> Iterator[None]:
    """Patch aioice while the ``with`` block runs, then restore the original function."""
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = _loopback_only
    try:
        yield
    finally:
        aioice.ice.get_host_addresses = original
