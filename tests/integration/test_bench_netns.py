"""The benches' network namespace and the handover's second network are final when made: no
interface there gets an address later. A veth's IPv6 link-local address used to come 1-2 s
after it went up (once duplicate address detection ended); Chromium took that for a network
change and failed the requests in flight with ``ERR_NETWORK_CHANGED``, so a page loading then
missed some of its scripts and never joined (``bench network``'s first handover, "timed out
waiting for both browsers"). A tentative address is listed at once, so no wait is needed to see
one coming."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from voice_server.bench import netchange, netns

pytestmark = pytest.mark.integration


@pytest.fixture
def namespace() -> Iterator[None]:
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    with netns.isolated():
        yield


def addresses() -> dict[str, list[str]]:
    """Each interface's addresses as "family address", tentative ones included (``ip -o``)."""
    out: dict[str, list[str]] = {}
    listing = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
    for line in listing.splitlines():
        _, dev, family, address = line.split()[:4]
        out.setdefault(dev, []).append(f"{family} {address}")
    return out


def test_the_namespace_and_the_second_network_have_their_ipv4_address_and_nothing_to_come(
    namespace: None,
) -> None:
    netchange.add_second_network()
    try:
        got = addresses()
        assert got["vsveth0"] == [f"inet {netns.BROWSER_ADDRESS}/32"]
        assert got["vsveth2"] == [f"inet {netchange.SECOND_ADDRESS}/32"]
        assert "vsveth1" not in got and "vsveth3" not in got  # no link-local (tentative) either
    finally:
        netchange.remove_second_network()
