"""`serve --node-id --redis-url --database-url`: nodes of a cluster on a real redis-server and a
real PostgreSQL that the tests start (README "Cluster"). Short timings (heartbeat 0.2 s, a node
dead after 1.5 s); every wait is on a condition."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.audio import write_bursts
from tests.cluster_nodes import (
    eventually,
    metric,
    node_process,
    ready,
    running_nodes,
    serve_refused,
)
from tests.servers import ServerProcess
from tests.voiceclients import start_client
from tests.wsclient import Peer
from voice_server.bench.ports import free_port
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.integration


def reports(r: redis.Redis) -> list[tuple[str, str, str]]:
    """The nodes with a live report: (id, base URL, state), by id."""
    out = []
    for node in sorted(r.zrange("{voice}:nodes", 0, -1)):
        url, state = r.hmget(f"{{voice}}:node:{node}", ["base_url", "state"])
        if url is not None:
            out.append((node, url, state))
    return out


async def join_outcome(node: ServerProcess, token: str, device: str) -> tuple[str, Any]:
    """Join ``ops`` on ``node``: ("joined", session id) or ("error", (code, close code))."""
    peer = await Peer.connect(node.ws_url)
    try:
        await peer.send(type="join", token=token, channel="ops", device_id=device, id="j")
        msg = await peer.recv(30)
        while msg["type"] not in ("joined", "error"):
            msg = await peer.recv(30)
        if msg["type"] == "joined":
            return "joined", msg["session_id"]
        return "error", (msg["code"], await peer.closed(30))
    finally:
        await peer.ws.close()


def test_two_nodes_share_one_redis_and_a_duplicate_id_or_an_unreachable_store_is_refused(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b") as (a, b):
        for node, node_id in ((a, "a"), (b, "b")):
            status, body = ready(node)
            assert status == 200 and body["checks"]["redis"] == "up", body
            assert body["checks"]["node"] == node_id
        eventually(lambda: [n[2] for n in reports(r)] == ["ready", "ready"], "both reporting")
        live = reports(r)
        assert live == [("a", a.url, "ready"), ("b", b.url, "ready")]
        assert metric(a, "voice_cluster_redis_up") == 1

        # a second process under a live node's id: one line, non-zero, before anything starts
        twin = node_process(tmp_path, "a", pg_url, redis_server.url)
        code, err = serve_refused(twin)
        assert code == 1 and "node id 'a' is in use" in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert ready(a)[0] == 200  # the live one is untouched

        # a join on a: presence with expiry, the channel claimed by a with an epoch
        session_id = asyncio.run(join_and_drop(a, a.token("kim", "ops"), "kim-1"))
        held = eventually(lambda: r.hgetall(f"{{voice}}:session:{session_id}"), "presence")
        assert held == {"node": "a", "channel": "ops"}
        assert 0 < r.pttl(f"{{voice}}:session:{session_id}") <= 4500
        owner = r.hgetall("{voice}:owner:ops")
        assert owner["node"] == "a" and int(owner["epoch"]) >= 1
        assert metric(a, "voice_cluster_owned_channels") == 1

        # a dies (SIGKILL): no ghost once its records expire, by Redis's clock
        a.stop(signal.SIGKILL)
        eventually(
            lambda: (
                not r.exists(f"{{voice}}:session:{session_id}")
                and [n[0] for n in reports(r)] == ["b"]
                and not r.exists("{voice}:owner:ops")
            ),
            "a's presence, report and lease to expire",
        )
        assert ready(b)[0] == 200

    # Redis unreachable at start-up: one line, non-zero
    nowhere = node_process(tmp_path, "c", pg_url, f"redis://127.0.0.1:{free_port()}/0")
    code, err = serve_refused(nowhere)
    assert code == 1 and "cannot reach Redis at 127.0.0.1:" in err, err
    assert len(err.strip().splitlines()) == 1, err
    # PostgreSQL unreachable at start-up: likewise (checked first)
    no_db = node_process(tmp_path, "d", "postgresql://voice@127.0.0.1:1/voice", redis_server.url)
    code, err = serve_refused(no_db)
    assert code == 1 and len(err.strip().splitlines()) == 1, err


async def join_and_drop(node: ServerProcess, token: str, device: str) -> str:
    """Join, then drop the socket without leaving (the session waits its grace period)."""
    peer = await Peer.connect(node.ws_url)
    session_id = str((await peer.join(token, device_id=device))["session_id"])
    await peer.ws.close()
    return session_id


async def resume(node: ServerProcess, token: str, device: str, session_id: str) -> dict[str, Any]:
    peer = await Peer.connect(node.ws_url)
    try:
        return await peer.join(token, device_id=device, session_id=session_id)
    finally:
        await peer.ws.close()


def test_a_redis_outage_keeps_calls_going_refuses_joins_fast_and_recovers(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    """Redis hangs (SIGSTOP) during a call: the aiortc listener keeps hearing the talker, /readyz
    stays 200 with redis down, a new join gets cluster_unavailable (the socket closes with 1013)
    within seconds; after SIGCONT joins work again by themselves. Then Redis dies and comes back
    empty (SIGKILL, a new process): the node writes itself back."""
    assert redis_server.proc is not None
    grace = {"VOICE_GRACE_SECONDS": "60"}  # a detached session outlives the outage
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", env=grace) as (a,):
        listener = start_client(
            a, tmp_path, "lis", duration=120, record=False, extra_args=["--report-onsets"]
        )
        talker = start_client(
            a, tmp_path, "tal", loop=True, duration=120, record=False,
            play=write_bursts(  # loud, then quiet but still voice: an onset every 1.2 s
                tmp_path / "b.wav", 660.0, on_seconds=0.6, off_seconds=0.6, quiet_amplitude=300
            ),
            extra_args=["--mode", "open"],
        )  # fmt: skip
        pid = redis_server.proc.pid
        tok = a.token("new", "ops")
        try:
            listener.wait_event("onset", timeout=90)  # the talker is heard
            dropped = asyncio.run(join_and_drop(a, tok, "phone-1"))  # its socket drops
            redis_server.proc.send_signal(signal.SIGSTOP)
            heard_before = len(listener.seen("onset"))
            try:
                eventually(lambda: ready(a)[1]["checks"]["redis"] == "down", "readyz: redis down")
                status, body = ready(a)
                assert status == 200 and body["ready"] is True, body
                assert httpx.get(f"{a.url}/healthz", timeout=10).status_code == 200
                t0 = time.monotonic()
                kind, (code, close) = asyncio.run(join_outcome(a, tok, "new-1"))
                refused_in = time.monotonic() - t0
                assert (kind, code, close) == ("error", "cluster_unavailable", 1013)
                print(f"join refused {refused_in:.2f} s after it was sent (Redis hung)")
                assert metric(a, "voice_cluster_redis_up") == 0
                # a call in progress whose socket dropped resumes without Redis
                resumed = asyncio.run(resume(a, tok, "phone-1", dropped))
                assert resumed["resumed"] is True and resumed["session_id"] == dropped
                assert (
                    metric(a, 'voice_cluster_joins_refused_total{code="cluster_unavailable"}') == 1
                )
                # the call goes on: onsets keep coming while Redis is hung
                eventually(
                    lambda: len(listener.seen("onset")) >= heard_before + 3,
                    "the talker heard during the outage",
                )
                assert ready(a)[1]["checks"]["redis"] == "down"  # still hung meanwhile
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
                returned = time.monotonic()
            assert not listener.seen("disconnected"), listener.seen("disconnected")
            onsets = [e["t"] for e in listener.seen("onset")][heard_before - 1 :]
            gap = max(later - earlier for earlier, later in itertools.pairwise(onsets))
            print(f"onsets while Redis hung: {len(onsets) - 1}, longest gap {gap:.2f} s")
            eventually(
                lambda: asyncio.run(join_outcome(a, tok, "new-2"))[0] == "joined",
                "joins to work again after Redis returned",
            )
            print(f"joins accepted again {time.monotonic() - returned:.2f} s after SIGCONT")
            assert ready(a)[1]["checks"]["redis"] == "up"

            # Redis dies and a new, empty one starts: the node reports itself again
            r = redis.Redis.from_url(redis_server.url, decode_responses=True)
            redis_server.kill()
            kind, (code, _) = eventually(
                lambda: (o := asyncio.run(join_outcome(a, tok, "x-1")))[0] == "error" and o,
                "a join refused while Redis is dead",
            )
            assert code == "cluster_unavailable"
            redis_server.start()
            eventually(lambda: r.hget("{voice}:node:a", "state") == "ready", "a reports again")
            eventually(
                lambda: asyncio.run(join_outcome(a, tok, "y-1"))[0] == "joined",
                "joins after the restart",
            )
            assert not listener.seen("disconnected")
        finally:
            if redis_server.proc is not None and redis_server.proc.pid == pid:
                redis_server.proc.send_signal(signal.SIGCONT)
            for client in (talker, listener):
                client.proc.terminate()
                client.wait(30)


def test_drain_sends_migrate_refuses_new_joins_and_closes_at_the_deadline(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    with running_nodes(tmp_path, pg_url, redis_server.url, "a", "b") as (a, b):
        eventually(lambda: ready(b)[1]["checks"]["redis"] == "up", "b up")
        headset = start_client(
            a, tmp_path, "hs", duration=120, record=False, extra_args=["--node", b.url]
        )
        headset.wait_event("media", state="connected", timeout=90)
        # bad input first: a node that is not live, a Redis that cannot be reached
        for args, why in (
            (["nosuch"], "node 'nosuch' is not live"),
            (["a", "--redis-url", f"redis://127.0.0.1:{free_port()}/0"], "cannot reach Redis"),
        ):
            out = subprocess.run(
                [sys.executable, "-m", "voice_server.cli", "drain", *args, "--no-wait",
                 "--data-dir", str(a.data_dir)],
                capture_output=True, text=True, timeout=60, env={**os.environ, **a.env},
            )  # fmt: skip
            assert out.returncode == 1 and why in out.stderr, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr

        async def drain() -> tuple[dict[str, Any], dict[str, Any], int | None, str]:
            watcher = await Peer.connect(a.ws_url)
            await watcher.join(a.token("w", "ops"), device_id="w-1")
            cli = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "voice_server.cli", "drain", "a", "--deadline", "4",
                "--data-dir", str(a.data_dir), env={**os.environ, **a.env},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            migrate = await watcher.expect("migrate", timeout=60)
            refused = await join_outcome(a, a.token("late", "ops"), "late-1")
            closed = await watcher.closed(60)  # the deadline: what is left is closed
            out, err = await asyncio.wait_for(cli.communicate(), 60)
            assert cli.returncode == 0, err
            return migrate, {"refused": refused}, closed, out.decode()

        migrate, outcome, closed, out = asyncio.run(drain())
        assert migrate["url"] == b.url and migrate["deadline_s"] == 4
        assert outcome["refused"] == ("error", ("node_draining", 1013))
        assert closed == 1012
        report = json.loads(out.strip().splitlines()[-1])
        assert report["node"] == "a" and report["acknowledged"] is True
        assert report["sessions_left"] in (0, 1)  # the watcher may still count at the poll
        status, body = ready(a)
        assert status == 503 and body["checks"]["accepting"] is False
        assert metric(a, "voice_cluster_draining") == 1
        # the headset client followed migrate to b (a configured node) and has media there
        got = headset.wait_event("migrate", timeout=30)
        assert got["url"] == b.url
        headset.wait_event("moving", timeout=30)
        headset.wait_arrival("joined", 60, lambda e: e["t"] > got["t"])
        headset.wait_arrival("media", 60, lambda e: e["t"] > got["t"] and e["state"] == "connected")
        assert eventually(lambda: metric(b, "voice_sessions"), "the headset's session on b") == 1
        headset.proc.terminate()
        headset.wait(30)
