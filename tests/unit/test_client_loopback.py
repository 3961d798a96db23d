"""The aioice seam that gathers loopback host candidates. Fails loudly if aioice changes."""

from __future__ import annotations

import inspect

import aioice
import aioice.ice
import pytest

from voice_client import loopback


def test_seam_is_pinned_to_the_aioice_it_was_written_for() -> None:
    assert aioice.__version__ == loopback.SUPPORTED_AIOICE, (
        "aioice changed: re-check aioice.ice.get_host_addresses and its call in "
        "Connection.gather_candidates, then update voice_client/loopback.py"
    )
    loopback.check_aioice()


def test_aioice_still_enumerates_host_addresses_through_the_patched_name() -> None:
    signature = inspect.signature(aioice.ice.get_host_addresses)
    assert list(signature.parameters) == ["use_ipv4", "use_ipv6"]
    source = inspect.getsource(aioice.ice.Connection.gather_candidates)
    assert "get_host_addresses(" in source, "gather_candidates no longer calls get_host_addresses"
    # and it still skips loopback, which is why the seam exists
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


async def test_connection_gathers_a_loopback_candidate_inside_the_seam() -> None:
    original = aioice.ice.get_host_addresses
    conn = aioice.Connection(ice_controlling=True, components=1, use_ipv6=False)
    try:
        with loopback.loopback_candidates():
            await conn.gather_candidates()
        hosts = [(c.host, c.type) for c in conn.local_candidates]
        assert hosts == [("127.0.0.1", "host")]
    finally:
        await conn.close()
    assert aioice.ice.get_host_addresses is original


def test_seam_can_add_loopback_to_the_usual_addresses() -> None:
    usual = aioice.ice.get_host_addresses(True, False)
    with loopback.loopback_candidates(only=False):
        assert aioice.ice.get_host_addresses(True, False) == [*usual, "127.0.0.1"]
        assert aioice.ice.get_host_addresses(False, False) == []


def test_seam_restores_aioice_after_an_exception() -> None:
    original = aioice.ice.get_host_addresses
    with pytest.raises(KeyError), loopback.loopback_candidates():
        raise KeyError("boom")
    assert aioice.ice.get_host_addresses is original


def test_seam_refuses_addresses_that_are_not_loopback() -> None:
    with pytest.raises(ValueError), loopback.loopback_candidates(["10.0.0.1"]):
        pass


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("10.1.2.3", False),
        ("192.0.2.1", False),
    ],
)
def test_loopback_hosts_are_recognised(host: str, expected: bool) -> None:
    assert loopback.is_loopback_host(host) is expected
