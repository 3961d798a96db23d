"""The headset client's receive buffer against real reordering: two `voice-client` processes
(aiortc) and a real server, every datagram from the server to them delayed 0-80 ms on its own
by the bench's user-space jitter relay (`voice_server/bench/jitter.py`: this kernel has no
netem), so that many 20 ms packets arrive after a newer one. The listener must hear every
burst the talker sent, and its receive buffer must have put packets back in order. Then the
same with every datagram from the clients to the server delayed instead (the talker's uplink):
the server forwards each late packet into the hole it left in the slot stream's numbers
(`voice_media_late_forwarded_total`), where the listener's buffer puts it back.

Runs in a private network namespace (root): the relay takes the clients' UDP for the media port
through an nftables nat redirect there."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.audio import goertzel_power, loud_part, read_mono, write_bursts
from tests.servers import ServerProcess, running_server
from tests.turnserver import nft
from tests.voiceclients import start_client
from voice_server.bench import jitter, netns

pytestmark = pytest.mark.integration

JITTER_MS = 40.0  # each datagram waits uniformly 0-80 ms


@pytest.fixture(scope="module", params=["downlink", "uplink"])
def link(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    reason = netns.available()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["nft", "--version"], capture_output=True, check=False).returncode:
        pytest.skip("nft (Debian package nftables) is missing")
    with netns.isolated(), running_server(tmp_path_factory.mktemp("srv")) as srv:
        up, down = (JITTER_MS, 0.0) if request.param == "uplink" else (0.0, JITTER_MS)
        relay = jitter.JitterRelay(("127.0.0.1", srv.media_port), up, down).start()
        nft(jitter.rules(srv.media_port, relay.port))
        try:
            yield srv, request.param
        finally:
            relay.stop()
            assert relay.forwarded > 0  # the media did go through it


def _bursts(samples: list[int], rate: int) -> list[float]:
    """Each tone burst in a recording (5 ms pieces, loud above 1000: a 20 ms packet missing
    leaves at least three quiet ones; a burst ends after 200 ms of quiet): the share of its
    pieces, first loud to last, that are loud."""
    frame = rate // 200
    loud = [
        max((abs(x) for x in samples[i : i + frame]), default=0) > 1000
        for i in range(0, len(samples) - frame + 1, frame)
    ]
    out: list[float] = []
    first = last = None
    for i, on in enumerate([*loud, *([False] * 40)]):
        if on:
            first = i if first is None else first
            last = i
        elif first is not None and last is not None and i - last >= 40:
            out.append(sum(loud[first : last + 1]) / (last + 1 - first))
            first = last = None
    return out


def test_the_headset_hears_every_burst_whole_through_a_reordering_link(
    link: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    server, direction = link
    tone = write_bursts(tmp_path / "bursts.wav", 440.0, on_seconds=1.0, off_seconds=1.5)
    listener = start_client(server, tmp_path, "lena", duration=60)
    listener.wait_event("media", 90, state="connected")
    talker = start_client(server, tmp_path, "tom", play=tone, loop=True, record=False, duration=14)
    assert talker.wait(90) == 0, talker.stderr
    listener.proc.terminate()  # it leaves, writes its recording and its last `receive` event
    assert listener.wait(60) == 0, listener.stderr
    sending = [e["on"] for e in talker.of("sending")]
    sent = sum(1 for on, nxt in itertools.pairwise(sending) if on and not nxt)
    assert sent >= 4, talker.events  # whole bursts the talker sent (gate open, then closed)
    samples, rate = read_mono(listener.record)  # type: ignore[arg-type]
    heard = _bursts(samples, rate)
    receive = listener.of("receive")[-1]
    # every burst, nearly whole: the reordered packets dropped (a pass-through buffer) left
    # 23-32 % of each burst's 5 ms pieces quiet here. With 0-80 ms on each datagram a packet
    # can still come later than the listener's 60 ms window (concealed, often quieter): one
    # burst of a quiet CI run measured 0.898, so "whole" is 85 % or more, far from 68-77 %
    assert sent <= len(heard) <= sending.count(True), heard
    assert all(share >= 0.85 for share in heard[:sent]), (heard, receive)  # the last may be cut
    part = loud_part(samples, rate)
    assert goertzel_power(part, rate, 440.0) > 20 * goertzel_power(part, rate, 700.0)
    assert receive["reorder_ms"] == 60 and receive["frames"] > 0
    assert receive["reordered"] > 0, receive  # the relay reordered, the buffer put them back
    assert receive["late"] <= receive["packets"] // 20, receive  # in time, nearly all
    late = metric(server, "voice_media_late_forwarded_total")
    print(f"{direction} jitter: late packets forwarded by the server {late:.0f}, receive {receive}")
    if direction == "uplink":  # reordered before the server: forwarded, not dropped
        assert late > 0 and receive["filled"] <= receive["frames"] // 10, (late, receive)
    else:
        assert late == 0, late


def metric(server: ServerProcess, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")
