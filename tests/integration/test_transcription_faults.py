"""Never lost: SIGKILL the sidecar mid-burst, SIGKILL the server around burst ends; after
restarts every burst accepted before the kill is an utterance or a gap record."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.backends import queuing_blocked
from tests.integration.test_transcription import api_token, metric, utterances, wait_for
from tests.servers import ServerProcess, running_server
from tests.speech import SENTENCES, speech_wav
from tests.voiceclients import start_client
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database

pytestmark = pytest.mark.integration


@contextmanager
def sidecar(server: ServerProcess, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    log = (server.data_dir / "sidecar.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voice_server.cli",
            "transcriber",
            *(("--server", server.url) if server.url is not None else ()),
            "--data-dir",
            str(server.data_dir),
            # the tests' sidecar must get CPU beside other work (the SCHED_IDLE default barely
            # runs on a busy machine); its priority is tested on its own
            *(() if "--cpu-priority" in extra else ("--cpu-priority", "normal")),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def logged(server: ServerProcess) -> tuple[int, int]:
    """(utterances, gaps) in the server's call log."""
    log = SqliteCallLog(Database(server.data_dir / "voice.db"))
    gaps = log.gaps(channels=None, since_ms=None, until_ms=None)
    with Database(server.data_dir / "voice.db").connection() as conn:
        n = conn.execute("SELECT count(*) FROM utterance").fetchone()[0]
    return int(n), len(gaps)


def test_a_sidecar_killed_mid_burst_transcribes_the_burst_after_restart(tmp_path: Path) -> None:
    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    with running_server(tmp_path / "srv") as server:
        with sidecar(server) as first:
            wait_for(lambda: metric(server, "voice_transcription_link_up") == 1, 60, "sidecar")
            talker = start_client(server, tmp_path, "kim", play=wav, duration=6, record=False)
            wait_for(
                lambda: metric(server, "voice_transcriber_live_bursts_total") >= 1, 60, "burst"
            )
            time.sleep(1.0)
            first.send_signal(signal.SIGKILL)
            first.wait()
            assert talker.wait() == 0, talker.stderr
        assert logged(server) == (0, 0)  # nothing committed by the killed sidecar
        with sidecar(server):
            token = api_token(server, "ops")
            items = wait_for(lambda: utterances(server, token).json()["items"], 120, "catch-up")
        assert len(items) == 1 and items[0]["speaker_id"] == "kim" and items[0]["text"]
        assert not list((server.data_dir / "spool").glob("*.ogg*"))  # moved to clips


@pytest.mark.parametrize("seed", [1, 2])
def test_a_server_killed_around_burst_ends_loses_no_accepted_burst(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    wav = speech_wav(tmp_path / "three.wav", SENTENCES, gap_seconds=1.5)
    with running_server(tmp_path / "srv") as server:
        with sidecar(server):
            wait_for(lambda: metric(server, "voice_transcription_link_up") == 1, 60, "sidecar")
            listener = start_client(server, tmp_path, "lis", duration=25, record=False)
            time.sleep(1.0)
            stops: list[float] = []

            def watch(line: str) -> None:
                if '"talk_stopped"' in line:
                    stops.append(time.monotonic())

            listener.on_line.append(watch)
            talker = start_client(server, tmp_path, "kim", play=wav, duration=25, record=False)
            target = 1 + seed % 2  # kill around the end of the 2nd or 3rd burst... of those seen
            wait_for(lambda: len(stops) >= target, 90, "burst ends")
            time.sleep(rng.uniform(0.0, 0.6))  # random point just after a burst end
            killed_at = time.monotonic()
            server.stop(signal.SIGKILL)
            accepted = sum(1 for t in stops if t < killed_at - 0.3)
            talker.proc.kill()
            listener.proc.kill()
            talker.proc.wait()
            listener.proc.wait()
            server.start()  # same data directory and ports
            token = api_token(server, "ops")
            wait_for(
                lambda: (
                    sum(logged(server)) >= accepted
                    and not list((server.data_dir / "spool").glob("*.ogg*"))
                ),
                120,
                f"{accepted} accepted bursts in the log",
            )
        n, gaps = logged(server)
        assert n + gaps >= accepted >= 1
        items = utterances(server, token).json()["items"]
        assert all(u["speaker_id"] == "kim" for u in items)


def test_a_burst_started_while_the_spool_writer_is_stalled_survives_sigkill_as_a_gap(
    pg_url: str, tmp_path: Path
) -> None:
    """The server on PostgreSQL, the first burst's job stalled (its INSERT waits on a lock this
    test holds: a slow database; the uploads thread waits, not the spool writer): the next
    burst's file is on
    disk with its metadata from the burst's start all the same (the spool's opener thread), so
    the server SIGKILLed then comes back with a ``server_restart`` gap naming the talker, and
    queues the first burst (its file was closed before the stall)."""
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    wav = speech_wav(tmp_path / "two.wav", SENTENCES[:2], gap_seconds=1.5)
    (tmp_path / "srv").mkdir()
    spool = tmp_path / "srv" / "spool"
    holder = PgDatabase(pg_url)
    with running_server(tmp_path / "srv", env={"VOICE_DATABASE_URL": pg_url}) as server:
        listener = start_client(server, tmp_path, "lis", duration=40, record=False)
        listener.wait_event("media", state="connected", timeout=45)
        with holder.connection() as lock_conn:
            lock_conn.execute("BEGIN")
            lock_conn.execute("LOCK TABLE transcription_job IN EXCLUSIVE MODE")
            talker = start_client(server, tmp_path, "kim", play=wav, duration=40, record=False)
            try:
                wait_for(lambda: queuing_blocked(lock_conn), 90, "the first burst's queuing")
                (first,) = list(spool.glob("*.ogg"))
                begun = wait_for(
                    lambda: [p for p in spool.glob("*.ogg.part") if p.stat().st_size > 0],
                    90,
                    "the second burst's file",
                )
                server.stop(signal.SIGKILL)
            finally:
                talker.proc.kill()
                listener.proc.kill()
                talker.proc.wait()
                listener.proc.wait()
                lock_conn.execute("ROLLBACK")
        holder.close()
        second = begun[0].name.removesuffix(".ogg.part")
        server.start()  # the same data directory and database: recover() at start-up
        wait_for(lambda: not list(spool.glob("*.part")), 60, "the restart's recovery")
    db = PgDatabase(pg_url)
    try:
        gaps = PgCallLog(db).gaps(channels=None, since_ms=None, until_ms=None)
        (gap,) = [g for g in gaps if g.id.removesuffix("-restart") == second]
        assert gap.reason in ("server_restart", "node_restart")  # node_restart: a page was out
        assert (gap.speaker_id, gap.channel) == ("kim", "ops")
        assert (first.name.removesuffix(".ogg"), "queued", 0) in queued_jobs(pg_url)
    finally:
        db.close()


def queued_jobs(url: str) -> list[tuple[str, str, int]]:
    from voice_server.store.pg import PgDatabase

    db = PgDatabase(url)
    try:
        with db.connection() as conn:
            rows = conn.execute("SELECT id, state, attempt FROM transcription_job").fetchall()
        return [tuple(r) for r in rows]
    finally:
        db.close()


def test_on_postgres_two_sidecars_catch_up_through_the_job_queue_once(
    pg_url: str, tmp_path: Path
) -> None:
    """Server and sidecars on one PostgreSQL database: a burst spoken while no sidecar runs is
    queued by the server when it ends, claimed by one of two sidecars and committed exactly
    once (its job's fence counter is 1, one commit event)."""
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    (tmp_path / "srv").mkdir()
    env = {"VOICE_DATABASE_URL": pg_url}
    with running_server(tmp_path / "srv", env=env) as server:
        talker = start_client(server, tmp_path, "kim", play=wav, duration=6, record=False)
        assert talker.wait() == 0, talker.stderr
        spooled = wait_for(
            lambda: list((server.data_dir / "spool").glob("*.ogg")), 60, "the spool file"
        )
        queued = wait_for(lambda: queued_jobs(pg_url), 30, "the server to queue its job")
        assert queued == [(spooled[0].name.removesuffix(".ogg"), "queued", 0)]
        with sidecar(server, "--database-url", pg_url), sidecar(server, "--database-url", pg_url):
            token = api_token(server, "ops")
            items = wait_for(lambda: utterances(server, token).json()["items"], 180, "catch-up")
            wait_for(
                lambda: not list((server.data_dir / "spool").glob("*.ogg")), 60, "the clip moved"
            )
            # the clip is in the shared store too: with this node's file gone it still plays
            (local,) = list(server.data_dir.glob("clips/**/*.ogg"))
            data = local.read_bytes()
            local.unlink()
            got = httpx.get(server.url + items[0]["clip_url"], timeout=10)
            assert got.status_code == 200 and got.content == data
    assert len(items) == 1 and items[0]["speaker_id"] == "kim" and items[0]["text"]
    db = PgDatabase(pg_url)
    try:
        assert [e.kind for e in PgCallLog(db).events_after(0)] == ["utterance"]
        with db.connection() as conn:
            jobs = conn.execute("SELECT id, state, commits FROM transcription_job").fetchall()
        assert jobs == [(items[0]["id"], "done", 1)]
    finally:
        db.close()


def test_on_postgres_a_live_commit_makes_its_job_done_at_once(pg_url: str, tmp_path: Path) -> None:
    """A sidecar linked live on PostgreSQL commits a burst through the job queue: when the
    utterance is visible its job is done already (in the same transaction), with its fence
    counter at 1 and no worker's attempt (before, the job waited queued for a worker to find the
    burst done)."""
    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    (tmp_path / "srv").mkdir()
    with (
        running_server(tmp_path / "srv", env={"VOICE_DATABASE_URL": pg_url}) as server,
        sidecar(server, "--database-url", pg_url),
    ):
        wait_for(lambda: metric(server, "voice_transcription_link_up") == 1, 90, "sidecar")
        talker = start_client(server, tmp_path, "kim", play=wav, duration=6, record=False)
        assert talker.wait() == 0, talker.stderr
        db = PgDatabase(pg_url)
        try:
            log = PgCallLog(db)
            (event,) = wait_for(lambda: log.events_after(0), 120, "the live commit")
            with db.connection() as conn:
                jobs = conn.execute(
                    "SELECT id, state, attempt, commits FROM transcription_job"
                ).fetchall()
            assert [tuple(j) for j in jobs] == [(event.ref, "done", 0, 1)]
            assert metric(server, "voice_transcriber_live_bursts_total") == 1
            # the server queues the burst after closing its spool file (before or after the
            # live commit): a done job is left alone, no worker claims it
            wait_for(lambda: not list((server.data_dir / "spool").glob("*.ogg")), 60, "clip moved")
            assert queued_jobs(pg_url) == [(event.ref, "done", 0)]
            assert [e.ref for e in log.events_after(0)] == [event.ref]
        finally:
            db.close()


def link_bursts(server: ServerProcess) -> list[float]:
    """Live bursts given to each linked worker (voice_transcriber_link_live_bursts)."""
    lines = httpx.get(f"{server.url}/metrics").text.splitlines()
    name = "voice_transcriber_link_live_bursts{"
    return sorted(float(ln.rsplit(" ", 1)[1]) for ln in lines if ln.startswith(name))


def test_two_sidecars_linked_at_once_share_the_live_bursts(tmp_path: Path) -> None:
    """Two sidecars stay linked together (neither replaces the other); consecutive live bursts
    go to the least loaded one, so each gets one, and both are committed."""
    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    with running_server(tmp_path / "srv") as server, sidecar(server), sidecar(server):
        wait_for(lambda: metric(server, "voice_transcriber_links") == 2, 90, "two links")
        for name in ("kim", "lee"):
            talker = start_client(server, tmp_path, name, play=wav, duration=6, record=False)
            assert talker.wait() == 0, talker.stderr
        token = api_token(server, "ops")
        items = wait_for(
            lambda: (got := utterances(server, token).json()["items"]) and len(got) == 2 and got,
            180,
            "both utterances",
        )
        assert metric(server, "voice_transcriber_links") == 2  # still both
        assert link_bursts(server) == [1.0, 1.0]
        assert metric(server, "voice_transcriber_live_bursts_total") == 2
    assert sorted(i["speaker_id"] for i in items) == ["kim", "lee"]


def test_on_postgres_a_killed_nodes_burst_is_transcribed_on_another_machine(
    pg_url: str, tmp_path: Path
) -> None:
    """Node A records a burst (its clip uploaded to the shared store, its job queued) and is
    SIGKILLed; a worker on another machine (its own data directory: no spool file of A's, no
    deployment key, no --server: the database alone) claims the job, reads the clip through
    the ClipStore and commits it once."""
    from types import SimpleNamespace
    from typing import cast

    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    (tmp_path / "a").mkdir()
    with running_server(tmp_path / "a", env={"VOICE_DATABASE_URL": pg_url}) as node_a:
        talker = start_client(node_a, tmp_path, "kim", play=wav, duration=6, record=False)
        assert talker.wait() == 0, talker.stderr
        (job,) = wait_for(lambda: queued_jobs(pg_url), 60, "node A to queue its job")
        node_a.stop(signal.SIGKILL)
        other = tmp_path / "b"
        other.mkdir()
        elsewhere = cast(ServerProcess, SimpleNamespace(url=None, data_dir=other))
        db = PgDatabase(pg_url)
        try:
            with sidecar(elsewhere, "--database-url", pg_url):
                log = PgCallLog(db)
                got = wait_for(lambda: log.get(job[0]), 180, "the burst committed elsewhere")
            assert got.speaker_id == "kim" and got.text
            assert [e.ref for e in log.events_after(0)] == [job[0]]
            assert queued_jobs(pg_url) == [(job[0], "done", 1)]
        finally:
            db.close()
        assert not (other / "signing.key").exists()  # no key needed, none made
        assert "no live link" in (other / "sidecar.log").read_text()
    assert list((tmp_path / "a" / "spool").glob("*.ogg"))  # A's file never moved: read remotely


def test_on_postgres_a_clip_upload_held_by_a_locked_table_is_retried_then_transcribed(
    pg_url: str, tmp_path: Path
) -> None:
    """The ``clip`` table locked by another connection while a burst ends: the upload fails
    (its lock wait is bounded), is retried every second, and no job is queued meanwhile (a worker
    elsewhere would not find the audio); once released, the clip is uploaded and a worker on
    another machine (the database alone) transcribes it: no gap."""
    from types import SimpleNamespace
    from typing import cast

    import psycopg

    from voice_server.calllog.postgres import PgCallLog
    from voice_server.store.pg import PgDatabase

    wav = speech_wav(tmp_path / "one.wav", SENTENCES[:1], gap_seconds=0.5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    elsewhere = cast(ServerProcess, SimpleNamespace(url=None, data_dir=tmp_path / "b"))
    failures = "voice_spool_clip_upload_failures_total"
    with (
        running_server(tmp_path / "a", env={"VOICE_DATABASE_URL": pg_url}) as node,
        sidecar(elsewhere, "--database-url", pg_url),
        psycopg.connect(pg_url) as holder,
    ):
        holder.execute("LOCK TABLE clip IN ACCESS EXCLUSIVE MODE")  # held: a transaction
        talker = start_client(node, tmp_path, "kim", play=wav, duration=6, record=False)
        assert talker.wait() == 0, talker.stderr
        wait_for(lambda: metric(node, failures) >= 2, 90, "a retried upload")
        assert queued_jobs(pg_url) == []  # never queued before its clip is shared
        assert metric(node, "voice_spool_uploads_waiting") == 1
        holder.commit()  # released
        db = PgDatabase(pg_url)
        try:
            log = PgCallLog(db)
            event = wait_for(lambda: log.events_after(0), 180, "the burst committed elsewhere")
            got = log.get(event[0].ref)
            assert got is not None and got.speaker_id == "kim" and got.text
            assert log.gaps(channels=None, since_ms=None, until_ms=None) == []
        finally:
            db.close()
        assert metric(node, "voice_spool_clip_upload_seconds_count") == 1
        assert metric(node, "voice_spool_uploads_waiting") == 0
