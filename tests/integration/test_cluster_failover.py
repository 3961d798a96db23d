"""A node dies under a headset client (issue #20, failover): the real `voice-client` with
`--server a --node b --node c` rejoins another configured node instead of retrying the dead one.
Real redis-server and PostgreSQL started by the tests, three real `serve` nodes
(tests/cluster_nodes.py). a is SIGKILLed (its socket drops, reconnects are refused): the client
prints `failover` {from a, to b} and joins b with media. Then b is SIGSTOPped (its socket stays
open and silent): after 5 s of silence the client moves on to c. A talker on c loops bursts
throughout: the headset hears it (an onset) on a, again on b once c has re-owned the channel a
owned (the relay between nodes), and on c. Every wait is on an event or a condition with a
generous deadline; the times printed are informational."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.audio import write_bursts
from tests.cluster_nodes import eventually, metric, ready, running_nodes
from tests.voiceclients import start_client
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.integration

DEADLINE_S = 120.0  # a busy 2-core machine: ICE, three nodes and the client share it


def test_a_killed_then_a_hung_node_sends_the_headset_client_to_the_next_configured_node(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b", "c") as (a, b, c):
        for node in (a, b, c):
            eventually(lambda n=node: ready(n)[1]["checks"]["redis"] == "up", "redis up")
        headset = start_client(
            a, tmp_path, "hs", duration=600, record=False,
            extra_args=["--node", b.url, "--node", c.url, "--report-onsets"],
        )  # fmt: skip
        headset.wait_event("joined", timeout=DEADLINE_S)  # a owns the channel
        talker = start_client(
            c, tmp_path, "tal", loop=True, duration=600, record=False,
            play=write_bursts(tmp_path / "b.wav", 660.0, on_seconds=0.6, off_seconds=0.6),
            extra_args=["--mode", "open"],
        )  # fmt: skip
        stopped = None
        try:
            first = headset.wait_event("joined", timeout=DEADLINE_S)
            headset.wait_event("media", timeout=DEADLINE_S, state="connected")
            assert eventually(lambda: metric(a, "voice_sessions"), "the session on a") == 1
            headset.wait_event("onset", timeout=DEADLINE_S)  # c's talker, through a (the owner)

            # a is killed: the socket drops, the try on a is refused, the next goes to b
            assert a.proc is not None
            killed_at = time.monotonic()
            a.proc.send_signal(signal.SIGKILL)
            went = headset.wait_event("failover", timeout=DEADLINE_S)
            assert (went["from"], went["to"]) == (a.ws_url, b.ws_url), went
            assert went["reason"] == "refused", went
            joined_at, joined = headset.wait_arrival(
                "joined", DEADLINE_S, lambda e: e["t"] > went["t"]
            )
            print(f"SIGKILL -> joined b: {joined_at - killed_at:.2f} s")
            headset.wait_arrival(
                "media", DEADLINE_S, lambda e: e["t"] > joined["t"] and e["state"] == "connected"
            )
            assert eventually(lambda: metric(b, "voice_sessions"), "the session on b") == 1
            assert joined["session_id"] != first["session_id"]  # a new session: a's died
            # heard again on b: c re-owned the channel a owned, and mirrors its talker to b
            heard_at, _ = headset.wait_arrival("onset", DEADLINE_S, lambda e: e["t"] > joined["t"])
            print(f"SIGKILL -> hearing the talker on b: {heard_at - killed_at:.2f} s")
            assert [e["event"] for e in headset.seen("failover")] == ["failover"]  # never a again

            # b hangs: silence for 5 s, then straight on to c (a try on b would hang)
            assert b.proc is not None
            stopped = b.proc
            stopped_at = time.monotonic()
            stopped.send_signal(signal.SIGSTOP)
            hung = headset.wait_arrival("failover", DEADLINE_S, lambda e: e["t"] > joined["t"])[1]
            assert (hung["from"], hung["to"], hung["reason"]) == (b.ws_url, c.ws_url, "silent")
            lost = headset.seen("disconnected")[-1]
            assert lost["reason"].startswith("no message from the server"), lost
            joined_c_at, joined_c = headset.wait_arrival(
                "joined", DEADLINE_S, lambda e: e["t"] > hung["t"]
            )
            print(f"SIGSTOP -> joined c: {joined_c_at - stopped_at:.2f} s")
            headset.wait_arrival(
                "media", DEADLINE_S, lambda e: e["t"] > joined_c["t"] and e["state"] == "connected"
            )
            assert eventually(lambda: metric(c, "voice_sessions"), "the session on c") >= 1
            headset.wait_arrival("onset", DEADLINE_S, lambda e: e["t"] > joined_c["t"])
            assert headset.proc.poll() is None  # still running: it never gave up
        finally:
            if stopped is not None and stopped.poll() is None:
                stopped.send_signal(signal.SIGCONT)
            for client in (headset, talker):
                client.proc.terminate()
                client.wait(30)
