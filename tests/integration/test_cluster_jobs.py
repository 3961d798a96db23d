"""Periodic jobs run once across the nodes of a cluster (issue #20; README "Cluster"): three real
`serve --node-id` processes on one PostgreSQL and one Redis, the retention purge every 2 s and an
announcement schedule due. The purge runs once per period in the deployment (its audit row once,
``voice_jobs_steps_total{outcome="ran"}`` summed over the nodes at most once per period), and the
scheduled announcement fires once. Every wait is on a condition with a generous deadline; no
speed is asserted (a slow machine only runs fewer periods)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.calllog_seed import utterance
from tests.cluster_nodes import eventually, node_process
from tests.servers import ServerProcess
from voice_server.announce.request import AnnounceRequest
from voice_server.announce.schedule import Schedule
from voice_server.announce.schedule_store import Scheduled, ScheduleStore
from voice_server.backends.seam import open_call_log, open_database
from voice_server.bench.redisserver import RedisServer
from voice_server.calllog.model import new_burst_id
from voice_server.store.channels import ChannelStore

pytestmark = pytest.mark.integration

PERIOD_S = 2.0
DAY_MS = 86_400_000
WAIT_S = 120.0


def samples(server: ServerProcess, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on ``server`` whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    total = 0.0
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(name) and line[len(name)] in " {" and all(w in line for w in want):
            total += float(line.rsplit(" ", 1)[1])
    return total


def purge_steps(nodes: list[ServerProcess], outcome: str) -> float:
    return sum(
        samples(n, "voice_jobs_steps_total", job="retention-purge", outcome=outcome) for n in nodes
    )


def test_three_nodes_purge_once_per_period_and_fire_a_schedule_once(
    redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    env = {"VOICE_PURGE_INTERVAL_SECONDS": str(PERIOD_S)}
    nodes = [node_process(tmp_path, n, pg_url, redis_server.url, env) for n in ("a", "b", "c")]
    db = open_database(pg_url, tmp_path / "seed")
    try:
        with db.transaction() as conn:  # the "ops" channel keeps 30 days
            ChannelStore(db).update(
                conn, "ops", display_name="ops", retention_days=30, legal_hold=False
            )
        for node in nodes:
            node.start()
        calllog = open_call_log(pg_url, tmp_path / "seed", db)
        old = int(time.time() * 1000) - 31 * DAY_MS
        expired = [utterance(f"古い {i}", start_ms=old + i, clip=False) for i in range(20)]
        calllog.add_many(expired, committed_ms=old)  # with three nodes purging every 2 s
        now = int(time.time() * 1000)
        schedules = ScheduleStore(db)
        fire_at = now + 3000
        schedules.create(
            Scheduled(
                new_burst_id(now),
                "scheduler-test",
                "Scheduler Test",
                AnnounceRequest("定時連絡です", ("ops",)),
                Schedule("Asia/Tokyo", at_ms=fire_at),
                fire_at,
                "active",
                now,
            )
        )

        def gone() -> bool:
            with db.connection() as conn:
                row = conn.execute("SELECT count(*) FROM utterance").fetchone()
            return row is not None and row[0] == 0

        eventually(gone, "the expired rows purged", WAIT_S)

        # a window of several periods: every node has tried at least 5 more purge steps
        start = time.monotonic()
        ran0 = purge_steps(nodes, "ran")
        tried0 = [samples(n, "voice_jobs_steps_total", job="retention-purge") for n in nodes]
        eventually(
            lambda: all(
                samples(n, "voice_jobs_steps_total", job="retention-purge") >= t + 5
                for n, t in zip(nodes, tried0, strict=True)
            ),
            "five more purge steps on every node",
            WAIT_S,
        )
        ran = purge_steps(nodes, "ran") - ran0
        window = time.monotonic() - start
        # once per period in the deployment (a run starts at most 10 % early: timers drift; +2
        # for the runs at the window's edges, counted when they end), not once per node:
        # without the locks it is about 3 x window / period
        assert 1 <= ran <= window / (PERIOD_S * 0.9) + 2, (ran, window)
        assert purge_steps(nodes, "skipped") >= 6  # the others were told another node ran it
        assert purge_steps(nodes, "failed") == 0

        with db.connection() as conn:
            rows = conn.execute(
                "SELECT actor, target, details FROM audit_log WHERE action = 'calllog.purge'"
            ).fetchall()
        assert [(r[0], r[1]) for r in rows] == [("system:purge", "channel:ops")]
        assert json.loads(rows[0][2])["utterances"] == 20

        def fired() -> list[tuple[str, str]] | None:
            s = schedules.get(schedules.all()[0].id)
            assert s is not None
            if s.fires and s.fires[0].status != "firing":
                return [(f.status, f.error) for f in s.fires]
            return None

        got = eventually(fired, "the scheduled announcement fired", WAIT_S)
        if importlib.util.find_spec("pyopenjtalk") is not None:  # else its speech fails, once
            assert got == [("played", "")]
        assert len(got) == 1
        fires = sum(samples(n, "voice_announcement_schedule_fires_total") for n in nodes)
        assert fires == 1
        claims = [samples(n, "voice_jobs_steps_total", job="announcement-scheduler") for n in nodes]
        assert all(claims)  # every node's scheduler claims under the lock
    finally:
        for node in nodes:
            node.stop()
        db.close()
