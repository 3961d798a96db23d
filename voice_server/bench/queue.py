"""``voice-server bench queue``: the transcription job queue under worker kills.

Bursts (short Opus files in a spool, as the server writes them) arrive at a steady rate and are
queued; ``workers`` worker processes (:class:`~voice_server.transcribe.queueworker.QueueWorker`
with a fake recognizer that takes ``work_ms`` per burst) claim and commit them; every
``kill_every_s`` one of them is SIGKILLed and started again. At the end: ``lost`` (bursts with no
row in the call log), ``committed_twice`` (jobs whose fence passed twice, and commit events
beyond one per burst), and the delay from a burst's end (queued) to its commit. The same run is
the integration test's (tests/integration/test_transcription_queue.py) with fewer bursts.
A worker process is this module run as ``python -m voice_server.bench.queue worker …``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_server.argtypes import positive_float, positive_int
from voice_server.calllog.burst import DONE, SPOOL_DIR, BurstMeta
from voice_server.calllog.model import new_burst_id
from voice_server.calllog.ogg import OggOpusWriter
from voice_server.transcribe.queueworker import LEASE_SECONDS
from voice_server.transcribe.recognizer import RecResult

__all__ = ["QueueRun", "add_parser", "main", "run_queue", "worker_main"]

CHANNEL = "bench"


class _Rec:
    def __init__(self, work_s: float) -> None:
        self.bytes = 0
        self.work_s = work_s

    def accept(self, pcm: bytes) -> None:
        self.bytes += len(pcm)

    def partial(self) -> str:
        return ""

    def final(self) -> RecResult:
        time.sleep(self.work_s)
        return RecResult(f"burst of {self.bytes} bytes")

    def close(self) -> None:
        return None


@dataclass
class FakeFactory:
    """A recognizer that only counts bytes and takes ``work_s`` per burst."""

    work_s: float = 0.02
    name: str = "fake"
    language: str = "ja"
    sample_rate: int = 16000

    def create(self, phrases: list[str] | None = None) -> _Rec:
        return _Rec(self.work_s)


def opus_packets(seconds: float = 0.2) -> list[bytes]:
    import av

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format, enc.bit_rate = 48000, "mono", "s16", 24000
    out: list[bytes] = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        pcm = b"".join(
            int(6000 * math.sin(2 * math.pi * 440 * (i * 960 + k) / 48000)).to_bytes(
                2, "little", signed=True
            )
            for k in range(960)
        )
        frame.planes[0].update(pcm)
        frame.sample_rate = 48000
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def write_burst(spool: Path, packets: list[bytes], start_ms: int) -> str:
    meta = BurstMeta(new_burst_id(start_ms), CHANNEL, "u1", "Bench", "s1", start_ms)
    part = spool / f"{meta.id}.part"
    with open(part, "wb") as f:
        writer = OggOpusWriter(f.write, serial=int(meta.id[13:], 16), tags=meta.tags())
        for p in packets:
            writer.add(p, 960)
        writer.close()
    os.replace(part, spool / f"{meta.id}{DONE}")
    return meta.id


# ---------------------------------------------------------------------- a worker process
def worker_main(url: str | None, data_dir: Path, name: str, lease_s: float, work_s: float) -> None:
    """One worker process (``url`` None: the SQLite database in ``data_dir``)."""
    from voice_server.backends.seam import open_call_log, open_database, open_job_queue
    from voice_server.transcribe.engine import Engine
    from voice_server.transcribe.queueworker import QueueWorker

    db = open_database(url, data_dir)
    calllog = open_call_log(url, data_dir, db)
    queue = open_job_queue(db)
    engine = Engine(FakeFactory(work_s), calllog, workers=2, queue=queue)
    worker = QueueWorker(
        data_dir, engine, calllog, queue, name=name, lease_s=lease_s, jobs=2, scan=False
    )
    engine.on_committed = lambda u: worker.catchup.move(u.id)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    queue.wait(0)  # listening before it says it is ready
    (data_dir / f"ready-{name}").touch()
    worker.run(stop)
    engine.close()


# ---------------------------------------------------------------------- the run
@dataclass
class QueueRun:
    bursts: int = 1000
    workers: int = 3
    rate: float = 100.0  # bursts per second
    kill_every_s: float = 3.0
    lease_s: float = 2.0
    work_ms: float = 20.0
    timeout_s: float = 300.0


def _spawn(url: str | None, data_dir: Path, name: str, run: QueueRun) -> subprocess.Popen[bytes]:
    args = [url or "", str(data_dir), name, str(run.lease_s), str(run.work_ms / 1000)]
    return subprocess.Popen(
        [sys.executable, "-m", "voice_server.bench.queue", "worker", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _wait_ready(data_dir: Path, names: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    """The first workers have started (the clock starts with every worker up, not with their
    interpreters loading)."""
    deadline = time.monotonic() + 120
    while not all((data_dir / f"ready-{n}").exists() for n in names):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            raise RuntimeError("the queue workers did not start")
        time.sleep(0.05)


def run_queue(url: str | None, data_dir: Path, run: QueueRun) -> dict[str, Any]:
    """Produce ``run.bursts`` bursts, kill workers on the way, wait for every commit (or the
    timeout); the figures."""
    from voice_server.backends.seam import open_call_log, open_database, open_job_queue

    db = open_database(url, data_dir)
    calllog = open_call_log(url, data_dir, db)
    queue = open_job_queue(db)
    spool = data_dir / SPOOL_DIR
    spool.mkdir(parents=True, exist_ok=True)
    packets = opus_packets()
    procs = [_spawn(url, data_dir, f"w{i}", run) for i in range(run.workers)]
    _wait_ready(data_dir, [f"w{i}" for i in range(run.workers)], procs)
    ids: list[str] = []
    kills = 0
    started = time.monotonic()
    next_kill = started + run.kill_every_s
    try:
        while True:
            now = time.monotonic()
            due = min(run.bursts, int((now - started) * run.rate) + 1)
            batch = []
            while len(ids) < due:
                ms = time.time_ns() // 1_000_000
                ids.append(write_burst(spool, packets, ms - 200))
                batch.append((ids[-1], ms))
            queue.enqueue(batch)
            if now >= next_kill:
                victim = kills % run.workers
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                kills += 1
                procs[victim] = _spawn(url, data_dir, f"w{victim}k{kills}", run)
                next_kill = now + run.kill_every_s
            if len(ids) == run.bursts and len(calllog.done(ids)) == run.bursts:
                break
            if now - started > run.timeout_s:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return _figures(db, calllog, queue, ids, kills, time.monotonic() - started)


def _figures(
    db: Any, calllog: Any, queue: Any, ids: list[str], kills: int, secs: float
) -> dict[str, Any]:
    done = calllog.done(ids)
    with db.connection() as conn:
        events = conn.execute(
            "SELECT count(*), count(DISTINCT ref) FROM commit_event WHERE kind = 'utterance'"
        ).fetchone()
        delays = sorted(
            int(r[0])
            for r in conn.execute(
                "SELECT u.committed_ms - j.ready_ms FROM utterance u "
                "JOIN transcription_job j ON j.id = u.uid"
            ).fetchall()
        )
        attempts = conn.execute(
            "SELECT count(*) FROM transcription_job WHERE attempt > 1"
        ).fetchone()
    counts = queue.counts()

    def pct(p: float) -> int | None:
        return delays[min(len(delays) - 1, int(p * len(delays)))] if delays else None

    return {
        "bursts": len(ids),
        "committed": len(done),
        "lost": len(ids) - len(done),
        "committed_twice": counts.twice + int(events[0]) - int(events[1]),
        "fence_passes_over_one": counts.twice,
        "reclaimed_jobs": int(attempts[0]),
        "kills": kills,
        "seconds": round(secs, 1),
        "delay_ms": {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "max": delays[-1] if delays else None,
        },
    }


def add_parser(bsub: Any) -> None:
    p = bsub.add_parser(
        "queue",
        help="the transcription job queue under worker kills: lost, committed twice, delay",
    )
    p.add_argument("--bursts", type=positive_int, default=5000, help="(default 5000)")
    p.add_argument("--workers", type=positive_int, default=3, help="(default 3)")
    p.add_argument(
        "--rate", type=positive_float, default=50.0, help="bursts per second (default 50)"
    )
    p.add_argument("--kill-every", type=positive_float, default=20.0, help="seconds (default 20)")
    p.add_argument(
        "--lease", type=positive_float, default=LEASE_SECONDS, help="seconds (default 30)"
    )
    p.add_argument(
        "--work-ms", type=positive_float, default=20.0, help="fake recognition per burst"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the same run without kills")
    p.add_argument("--database-url", help="an empty database (default: a PostgreSQL of its own)")
    p.add_argument("--json", type=Path, help="write the figures to this file")


def main(args: Any) -> int:
    import json
    import tempfile

    from voice_server.bench.search_pg import database

    run = QueueRun(
        bursts=args.bursts,
        workers=args.workers,
        rate=args.rate,
        kill_every_s=args.kill_every,
        lease_s=args.lease,
        work_ms=args.work_ms,
        timeout_s=args.bursts / args.rate + 600,
    )
    result: dict[str, Any] = {"load_before": os.getloadavg()}
    plans = [("with_kills", run)]
    if not args.no_baseline and args.database_url is None:  # a given database is used once
        plans.append(("no_kills", QueueRun(**{**run.__dict__, "kill_every_s": 1e9})))
    for label, plan in plans:
        with database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
            result[label] = run_queue(url, Path(tmp), plan)
            print(f"{label}: {json.dumps(result[label])}")
    result["load_after"] = os.getloadavg()
    result["settings"] = run.__dict__
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    bad = result["with_kills"]["lost"] or result["with_kills"]["committed_twice"]
    return 1 if bad else 0


if __name__ == "__main__" and len(sys.argv) == 7 and sys.argv[1] == "worker":
    worker_main(
        sys.argv[2] or None, Path(sys.argv[3]), sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
    )
