"""The dashboard's live view across nodes (README "Live view across nodes"): two real ``serve``
nodes on one Redis and one PostgreSQL; a client talks on node a, a supervisor's live view on
node b sees it (tagged with node a), a supervisor of another channel is refused; after Redis
dies and an empty one starts, b resyncs and a's events flow again; once a dies, its part leaves
b's view. Every wait is on a condition."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.audio import write_bursts
from tests.cluster_nodes import eventually, metric, ready, running_nodes
from tests.servers import ServerProcess
from tests.voiceclients import start_client
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.integration
WAIT_S = 120.0


class LiveWatch:
    """A live-view WebSocket (bearer ``aud=api``), read by a thread into :attr:`messages`."""

    def __init__(self, node: ServerProcess, bearer: str, channel: str) -> None:
        url = node.url.replace("http", "ws", 1) + f"/dashboard/live/{channel}/ws"
        self.ws = connect(url, additional_headers={"Authorization": f"Bearer {bearer}"})
        self.ws.send(json.dumps({"type": "hello"}))
        self.messages: list[dict[str, Any]] = []
        self.closed: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for text in self.ws:
                self.messages.append(json.loads(text))
        except ConnectionClosed as exc:
            self.closed = exc.rcvd.code if exc.rcvd else -1
        else:
            self.closed = self.ws.close_code or -1

    def close(self) -> None:
        self.ws.close()
        self._thread.join(10)

    def talking(self, sub: str, since: int = 0) -> list[tuple[bool, str | None]]:
        """(talking, node) of ``sub`` in each presence snapshot from message ``since`` on."""
        out = []
        for msg in self.messages[since:]:
            for p in msg.get("participants", ()) if msg["type"] == "presence" else ():
                if p["sub"] == sub:
                    out.append((p["talking"], p.get("node")))
        return out


def last_presence(watch: LiveWatch) -> list[dict[str, Any]] | None:
    shown = [m for m in watch.messages if m["type"] == "presence"]
    return shown[-1]["participants"] if shown else None


def started_and_stopped(watch: LiveWatch, since: int = 0) -> bool:
    seen = watch.talking("tal", since)
    first = next((i for i, s in enumerate(seen) if s == (True, "a")), None)
    return first is not None and (False, "a") in seen[first:]


def test_a_supervisor_on_node_b_sees_talk_on_node_a_and_again_after_redis_restarts(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b") as (a, b):
        eventually(lambda: ready(b)[1]["checks"]["redis"] == "up", "b up", WAIT_S)
        eventually(lambda: metric(b, "voice_cluster_events_resyncs_total") >= 1, "b subscribed")
        sup = b.token("boss", "ops", aud="api", role="supervisor")
        other = b.token("boss2", "hq", aud="api", role="supervisor")
        watch = LiveWatch(b, sup, "ops")
        refused = LiveWatch(b, other, "ops")
        talker = start_client(
            a, tmp_path, "tal", loop=True, duration=240, record=False,
            play=write_bursts(tmp_path / "b.wav", 660.0, on_seconds=0.8, off_seconds=1.6),
            extra_args=["--mode", "open"],
        )  # fmt: skip
        try:
            eventually(lambda: refused.closed == 4403, "the other supervisor refused", WAIT_S)
            assert refused.messages == []
            eventually(lambda: started_and_stopped(watch), "tal's talk seen on b", WAIT_S)
            assert metric(b, "voice_cluster_events_received_total") >= 1
            assert metric(a, "voice_cluster_events_published_total") >= 1
            assert {p.get("node") for p in watch.messages[-1]["participants"]} <= {"a"}

            # Redis dies, an empty one starts: both resubscribe, resync, a's events flow again
            resyncs = metric(b, "voice_cluster_events_resyncs_total")
            redis_server.kill()
            redis_server.start()
            eventually(
                lambda: metric(b, "voice_cluster_events_resyncs_total") > resyncs,
                "b resynced",
                WAIT_S,
            )
            since = len(watch.messages)
            eventually(lambda: started_and_stopped(watch, since), "talk seen again", WAIT_S)
            assert watch.closed is None and not talker.seen("disconnected")

            # a dies without a word: its part leaves b's view once its report expires
            a.stop(signal.SIGKILL)
            eventually(lambda: last_presence(watch) == [], "a's part gone from b's view", WAIT_S)
        finally:
            talker.proc.terminate()
            talker.wait(30)
            watch.close()
            refused.close()
