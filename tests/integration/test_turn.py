"""TURN over TLS through a real coturn: time-limited credentials (TURN REST API) in
``joined.ice_servers``, headset clients (aiortc) that reach the server only through the relay,
and a credential past its lifetime refused by coturn.

Runs in a private network namespace (root): coturn on 127.0.0.3:443 with a certificate from a
test CA (the clients get it with ``--ca-file``), the server on 127.0.0.1, and nftables dropping
UDP from the clients' own host address (127.0.0.1) to the media port and all TCP to it: the
relay (127.0.0.3) is the only way in, as on a network that allows only HTTPS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aioice.stun import TransactionFailed
from aioice.turn import create_turn_endpoint

from tests.audio import goertzel_power, loud_part, read_mono, write_bursts
from tests.servers import ServerProcess, running_server
from tests.turnserver import SECRET, Turn, missing, nft, running_turn
from tests.voiceclients import start_client
from tests.wsclient import Peer
from voice_server.bench import netns
from voice_server.identity.turncreds import credential_for

pytestmark = pytest.mark.integration

RELAY = "127.0.0.3"
ONLY_THE_RELAY = """
table inet voice_test_turn {{
  chain out {{ type filter hook output priority 0; policy accept;
    ip saddr 127.0.0.1 udp dport {media} counter drop;
    tcp dport {media} counter drop; }}
}}
"""


@pytest.fixture(scope="module")
def namespace() -> Iterator[None]:
    reason = netns.available() or missing()
    if reason:
        pytest.skip(reason)
    with netns.isolated():
        yield


@pytest.fixture(scope="module")
def turn(namespace: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Turn]:
    with running_turn(tmp_path_factory.mktemp("turn"), address=RELAY, port=443) as relay:
        yield relay


@pytest.fixture(scope="module")
def turn_server(turn: Turn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = turn.server_env(VOICE_TURN_TTL_SECONDS="600")
    with running_server(tmp_path_factory.mktemp("srv"), env=env) as srv:
        nft(ONLY_THE_RELAY.format(media=srv.media_port))
        yield srv
        assert SECRET not in srv.log()  # the shared secret is never logged


def test_joined_carries_a_time_limited_turn_credential(
    turn_server: ServerProcess, turn: Turn
) -> None:
    token = turn_server.token("alice", "ops")

    async def join() -> dict[str, Any]:
        peer = await Peer.connect(turn_server.ws_url)
        try:
            return await peer.join(token, device_id="t1")
        finally:
            await peer.close()

    joined = asyncio.run(join())
    (server,) = joined["ice_servers"]
    assert server["urls"] == [turn.url]
    expiry, sub = server["username"].split(":")
    assert sub == "alice" and 590 <= int(expiry) - time.time() <= 610
    assert server["credential"] == credential_for(SECRET, server["username"])


def _by_path(server: ServerProcess, path: str) -> float:
    needle = f'voice_participants_by_path{{path="{path}"}} '
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    return sum(float(line.split(" ")[-1]) for line in text.splitlines() if line.startswith(needle))


def _allocate(turn: Turn, username: str, password: str) -> None:
    async def go() -> None:
        context = ssl.create_default_context(cafile=str(turn.ca))
        transport, _ = await create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=(turn.address, turn.port),
            username=username,
            password=password,
            ssl=context,
            transport="tcp",
        )
        transport.close()

    asyncio.run(asyncio.wait_for(go(), 30))


def test_coturn_grants_a_fresh_credential_and_refuses_one_past_its_lifetime(turn: Turn) -> None:
    fresh = f"{int(time.time()) + 300}:alice"
    _allocate(turn, fresh, credential_for(SECRET, fresh))
    expired = f"{int(time.time()) - 5}:alice"
    with pytest.raises(TransactionFailed):
        _allocate(turn, expired, credential_for(SECRET, expired))
    with pytest.raises(TransactionFailed):  # and a forged one
        _allocate(turn, fresh, credential_for("not-the-secret", fresh))


def test_headset_clients_talk_and_hear_through_the_relay_over_tls(
    turn_server: ServerProcess, turn: Turn, tmp_path: Path
) -> None:
    before = turn.allocations()
    a_tone = write_bursts(tmp_path / "a.wav", 440.0, on_seconds=1.0, off_seconds=0.6)
    b_tone = write_bursts(tmp_path / "b.wav", 880.0, on_seconds=1.0, off_seconds=0.6)
    ca = ["--ca-file", str(turn.ca)]
    a = start_client(
        turn_server, tmp_path, "ann", play=a_tone, loop=True, duration=14, extra_args=ca
    )
    b = start_client(
        turn_server, tmp_path, "ben", play=b_tone, loop=True, duration=14, extra_args=ca
    )
    deadline = time.monotonic() + 60  # each reports its path (`stats`, every 5 s)
    while _by_path(turn_server, "turn-tls") < 2:
        assert time.monotonic() < deadline, "the headset clients did not report turn-tls"
        time.sleep(0.2)
    assert a.wait(90) == 0, a.stderr
    assert b.wait(90) == 0, b.stderr
    for client in (a, b):
        assert any(e["state"] == "connected" for e in client.of("media")), client.events
    for client, heard_freq in ((a, 880.0), (b, 440.0)):
        samples, rate = read_mono(client.record)  # type: ignore[arg-type]
        part = loud_part(samples, rate)
        assert part, f"{client.name} heard nothing through the relay"
        assert goertzel_power(part, rate, heard_freq) > 20 * goertzel_power(part, rate, 550.0)
    assert turn.allocations() - before >= 2, turn.log()[-2000:]
