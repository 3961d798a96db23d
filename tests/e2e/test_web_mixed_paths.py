"""One channel, two paths: nftables drops the UDP of one browser (it runs as another user,
``nobody``, and the rule matches that user's sockets), so it takes the server's ICE-TCP
candidate; the other browser takes UDP. Each hears the other, and the server counts one
participant per path."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import write_bursts
from tests.e2e.asuser import NOBODY, chromium_as, missing
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import FREQ_A, FREQ_B, connected, hears
from tests.e2e.test_web_tcp import metric
from tests.servers import ServerProcess
from tests.turnserver import nft

pytestmark = pytest.mark.e2e

BLOCK_NOBODY_UDP = f"""
table inet voice_test_mixed {{
  chain out {{ type filter hook output priority 0; policy accept;
    meta l4proto udp meta skuid {NOBODY} counter drop; }}
}}
"""


@pytest.fixture(scope="module")
def nobody_browser(namespace: None) -> Iterator[tuple[str, Path]]:
    """A Chromium wrapper running as nobody, and a folder nobody can read (its WAV)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    nft(BLOCK_NOBODY_UDP)
    try:
        with chromium_as(NOBODY) as found:
            yield found
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "voice_test_mixed"], check=False)


@pytest.fixture(scope="module")
def pages(
    pw: Any,
    e2e_server: ServerProcess,
    nobody_browser: tuple[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    wrapper, home = nobody_browser
    tmp = tmp_path_factory.mktemp("tones")
    a_file = write_bursts(home / "a.wav", FREQ_A, on_seconds=1.2, off_seconds=1.6)
    a_file.chmod(0o644)
    b_file = write_bursts(tmp / "b.wav", FREQ_B, on_seconds=2.0, off_seconds=0.3)
    srv = e2e_server
    a = open_page(pw, device_link(srv, srv.token("alice", "ops")), audio=a_file, executable=wrapper)
    b = open_page(pw, device_link(srv, srv.token("bob", "ops")), audio=b_file)
    yield {"a": a, "b": b}
    for page in (a, b):
        page.context.browser.close()


def test_a_tcp_browser_and_a_udp_browser_hear_each_other(
    pages: dict[str, Any], e2e_server: ServerProcess
) -> None:
    a, b = pages["a"], pages["b"]
    wait_for(lambda: connected(a) and connected(b), "both pages joined with media")
    wait_for(lambda: hears(b, FREQ_A), "B (UDP) hearing A's 440 Hz")
    wait_for(lambda: hears(a, FREQ_B), "A (TCP) hearing B's 880 Hz")
    tcp = 'voice_media_transports_by_path{path="tcp"}'
    udp = 'voice_media_transports_by_path{path="udp"}'
    wait_for(
        lambda: metric(e2e_server, tcp) == 1 and metric(e2e_server, udp) == 1,
        "one participant on each path",
    )
    wait_for(
        lambda: (
            metric(e2e_server, 'voice_participants_by_path{path="tcp"}') == 1
            and metric(e2e_server, 'voice_participants_by_path{path="udp"}') == 1
        ),
        "each phone reporting its own path",
    )
    assert not a.errors and not b.errors
