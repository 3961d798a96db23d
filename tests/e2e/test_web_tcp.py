"""ICE over TCP (RFC 6544) for browsers on networks that drop UDP: Chromium connects to the
server's passive TCP candidate and talks and hears. nftables drops every UDP packet in this
module's private network namespace (addresses stay in 127.0.0.0/8: Chromium pairs with a
passive TCP candidate on 127.0.0.1 from its 127.0.0.2 veth address)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.audio import write_bursts
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import FREQ_A, FREQ_B, connected, hears
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.e2e

BLOCK_UDP = """
table inet voice_test {
  chain out { type filter hook output priority 0; policy accept; meta l4proto udp counter drop; }
}
"""


def metric(server: ServerProcess, name: str) -> float:
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def udp_blocked(namespace: None) -> Iterator[None]:
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("nftables is not installed (scripts/install-test-deps.sh)")
    subprocess.run([nft, "-f", "-"], input=BLOCK_UDP, text=True, check=True)
    yield


@pytest.fixture(scope="module")
def tcp_server(
    udp_blocked: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    with running_server(tmp_path_factory.mktemp("tcp"), env={"VOICE_GRACE_SECONDS": "4"}) as srv:
        yield srv


def test_browsers_talk_and_hear_over_ice_tcp_when_udp_is_dropped(
    pw: Any, tcp_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tmp = tmp_path_factory.mktemp("tones")
    a_file = write_bursts(tmp / "a.wav", FREQ_A, on_seconds=1.2, off_seconds=1.6)
    b_file = write_bursts(tmp / "b.wav", FREQ_B, on_seconds=2.0, off_seconds=0.3)
    srv = tcp_server
    a = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=a_file)
    b = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=b_file)
    try:
        wait_for(lambda: connected(a) and connected(b), "both pages joined with media")
        wait_for(lambda: hears(b, FREQ_A), "B hearing A's 440 Hz over TCP")
        wait_for(lambda: hears(a, FREQ_B), "A hearing B's 880 Hz over TCP")
        assert metric(srv, "voice_media_tcp_accepted_total") >= 2
        assert metric(srv, 'voice_media_transports_by_path{path="tcp"}') == 2
        # each phone reports its path (signaling `stats`, every 5 s)
        wait_for(
            lambda: metric(srv, 'voice_participants_by_path{path="tcp"}') == 2,
            "both phones reporting ICE-TCP",
        )
        assert not a.errors and not b.errors
    finally:
        for page in (a, b):
            page.context.browser.close()
