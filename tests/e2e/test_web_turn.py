"""TURN over TLS for phones on networks that allow only HTTPS, and one channel over every path.

In this module's namespace coturn listens on 127.0.0.3:443 (TLS, a certificate from a test CA:
Chromium gets the relay's key pinned, the headset client ``--ca-file``) and the server hands out
time-limited credentials in ``joined.ice_servers``. nftables shapes each participant's network:

- the "HTTPS-only" phone runs as ``nobody``: its sockets may open TCP to port 443 (the relay)
  and to the web server's port (which a deployment serves on 443 too), nothing else;
- the "no UDP" phone runs as uid 65533: its UDP is dropped and so is the relay's port (it takes
  ICE-TCP; with the relay reachable too, a busy machine may let the relay's check win the race
  and Chromium stays on it);
- the headset client's host candidates (127.0.0.1) cannot reach the media port: only the relay
  (127.0.0.3) can;
- the root phone (127.0.0.2) has the whole network: UDP.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.audio import goertzel_power, loud_part, read_mono, write_bursts
from tests.e2e.asuser import NOBODY, chromium_as, missing
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.e2e.test_web_client import FREQ_A, FREQ_B, FREQ_D, connected, hears
from tests.e2e.test_web_tcp import metric
from tests.servers import ServerProcess, running_server
from tests.turnserver import Turn, nft, running_turn
from tests.turnserver import missing as turn_missing
from tests.voiceclients import start_client

pytestmark = pytest.mark.e2e

NO_UDP_USER = 65533
FREQ_HEADSET = 1100.0
TABLE = "voice_test_turn"
RULES = """
table inet {table} {{
  chain out {{ type filter hook output priority 0; policy accept;
    meta skuid {https_only} tcp dport {{ 443, {http} }} accept;
    meta skuid {https_only} counter drop;
    meta skuid {no_udp} meta l4proto udp counter drop;
    meta skuid {no_udp} tcp dport 443 counter drop;
    ip saddr 127.0.0.1 udp dport {media} counter drop; }}
}}
"""


@pytest.fixture(scope="module")
def turn(namespace: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    reason = missing() or turn_missing()
    if reason:
        pytest.skip(reason)
    with running_turn(tmp_path_factory.mktemp("turn"), address="127.0.0.3", port=443) as relay:
        yield relay


@pytest.fixture(scope="module")
def server(turn: Turn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = turn.server_env()
    with running_server(tmp_path_factory.mktemp("srv"), env=env) as srv:
        nft(
            RULES.format(
                table=TABLE,
                https_only=NOBODY,
                no_udp=NO_UDP_USER,
                http=srv.port,
                media=srv.media_port,
            )
        )
        try:
            yield srv
        finally:
            subprocess.run(["nft", "delete", "table", "inet", TABLE], check=False)


@pytest.fixture(scope="module")
def https_only(server: ServerProcess) -> Iterator[tuple[str, Path]]:
    with chromium_as(NOBODY) as found:
        yield found


@pytest.fixture(scope="module")
def no_udp(server: ServerProcess) -> Iterator[tuple[str, Path]]:
    with chromium_as(NO_UDP_USER) as found:
        yield found


def _page(pw: Any, srv: ServerProcess, turn: Turn, name: str, audio: Path, exe: str | None) -> Any:
    audio.chmod(0o644)
    link = device_link(srv, srv.token(name, "ops"))
    return open_page(pw, link, audio=audio, executable=exe, args=turn.chromium_args)


def _path_of(page: Any) -> str | None:
    report = page.evaluate("window.voiceDiag && window.voiceDiag.call.networkReport()")
    return report.get("path") if report else None


def test_an_https_only_phone_and_a_headset_client_talk_and_hear_through_coturn(
    pw: Any, server: ServerProcess, turn: Turn, https_only: tuple[str, Path], tmp_path: Path
) -> None:
    wrapper, home = https_only
    phone = _page(
        pw,
        server,
        turn,
        "alice",
        write_bursts(home / "a.wav", FREQ_A, on_seconds=1.2, off_seconds=1.0),
        wrapper,
    )
    tone = write_bursts(tmp_path / "h.wav", FREQ_HEADSET, on_seconds=1.2, off_seconds=0.8)
    headset = start_client(
        server,
        tmp_path,
        "hugo",
        play=tone,
        loop=True,
        duration=25,
        extra_args=["--ca-file", str(turn.ca)],
    )
    try:
        wait_for(lambda: connected(phone), "the HTTPS-only phone joined with media", 90)
        wait_for(lambda: hears(phone, FREQ_HEADSET), "the phone hearing the headset", 60)
        wait_for(
            lambda: metric(server, 'voice_participants_by_path{path="turn-tls"}') == 2,
            "the phone and the headset client reporting the TURN path",
        )
        assert headset.wait(90) == 0, headset.stderr
        samples, rate = read_mono(headset.record)  # type: ignore[arg-type]
        part = loud_part(samples, rate)
        assert part, "the headset client heard nothing"
        assert goertzel_power(part, rate, FREQ_A) > 20 * goertzel_power(part, rate, 550.0)
        assert not phone.errors, phone.errors
    finally:
        phone.context.browser.close()
        if headset.proc.poll() is None:
            headset.proc.kill()


def test_one_channel_over_udp_ice_tcp_and_turn_all_hear_each_other(
    pw: Any,
    server: ServerProcess,
    turn: Turn,
    https_only: tuple[str, Path],
    no_udp: tuple[str, Path],
    tmp_path: Path,
) -> None:
    (turn_exe, turn_home), (tcp_exe, tcp_home) = https_only, no_udp
    pages = {
        "turn-tls": _page(
            pw,
            server,
            turn,
            "tara",
            write_bursts(turn_home / "t.wav", FREQ_A, on_seconds=1.2, off_seconds=1.6),
            turn_exe,
        ),
        "tcp": _page(
            pw,
            server,
            turn,
            "tom",
            write_bursts(tcp_home / "c.wav", FREQ_D, on_seconds=1.4, off_seconds=1.4),
            tcp_exe,
        ),
        "udp": _page(
            pw,
            server,
            turn,
            "una",
            write_bursts(tmp_path / "u.wav", FREQ_B, on_seconds=2.0, off_seconds=0.3),
            None,
        ),
    }
    freq = {"turn-tls": FREQ_A, "tcp": FREQ_D, "udp": FREQ_B}
    try:
        wait_for(lambda: all(connected(p) for p in pages.values()), "three phones with media", 90)
        for path, page in pages.items():
            wait_for(
                lambda page=page, path=path: _path_of(page) == path,
                f"the {path} phone on {path}",
                90,
            )
            for other, hz in freq.items():
                if other != path:
                    wait_for(
                        lambda page=page, hz=hz: hears(page, hz), f"{path} hearing {other}", 60
                    )
        for path in freq:
            wait_for(
                lambda path=path: (
                    metric(server, f'voice_participants_by_path{{path="{path}"}}') == 1
                ),
                f"one phone reporting {path}",
            )
        for page in pages.values():
            assert not page.errors, page.errors
    finally:
        for page in pages.values():
            page.context.browser.close()
