"""The load test's coordinator: server, generator workers, phases, measurements.

Phases: start (or attach to) the server → start the worker processes (each builds its share of
participants and says ``ready``) → join phase (every worker connects its participants on the
plan's schedule, at ``join_rate`` per second overall) → warm-up → the measured window (two
scrapes of ``/metrics``, ``/proc`` CPU meters of the server, its sidecar, every worker and this
process, the machine's busy time, kernel UDP drop counters, and one resource sample every
``sample_seconds`` for the soak series) → snapshots → every participant leaves → the server is
scraped once more after the sessions have gone (``after_leave``) → the server stops if this
run started it. The coordinator itself sends no media: its CPU is counted with the generator's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from voice_server.bench import prom
from voice_server.bench.procstat import (
    CLK_TCK,
    CpuMeter,
    count_fds,
    read_machine_busy_seconds,
    read_rss_bytes,
    read_threads,
)
from voice_server.bench.udpstat import read_udp_sockets, total_drops
from voice_server.limits import raise_fd_limit
from voice_server.loadtest.plan import LoadPlan
from voice_server.loadtest.report import ProcFigures, RunData, build_report
from voice_server.loadtest.soak import SoakSeries, summarize
from voice_server.loadtest.target import (
    RunningServer,
    StartedServer,
    child_pids,
    media_worker_pids,
)
from voice_server.loadtest.worker import worker_main

__all__ = ["LoadOptions", "run_load"]

log = logging.getLogger(__name__)
Say = Callable[[str], None]


class LoadOptions:
    """How to run a plan (what is not part of the plan itself)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        data_dir: Path | None = None,
        server_pid: int | None = None,
        sample_seconds: float | None = None,
        connect_within: float = 30.0,
        debug_objects: bool = False,
        poller: bool = True,
        shared_socket: bool = True,
        phases: int = 20,
        verify_every: int = 8,
        nice: int = 5,
        say: Say | None = None,
    ) -> None:
        if url is not None and data_dir is None:
            raise ValueError("--url needs --data-dir (the server's, for its signing key)")
        self.url = url
        self.data_dir = data_dir
        self.server_pid = server_pid
        self.sample_seconds = sample_seconds
        self.connect_within = connect_within
        self.debug_objects = debug_objects
        self.poller = poller
        self.shared_socket = shared_socket
        self.phases = phases
        self.verify_every = verify_every
        self.nice = nice
        self.say: Say = say or (lambda _text: None)


class _Worker:
    """A worker process and its end of the pipe."""

    def __init__(self, proc: BaseProcess, conn: Connection) -> None:
        self.proc = proc
        self.conn = conn
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.meter: CpuMeter | None = None
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def _readable(self) -> None:
        try:
            self.events.put_nowait(self.conn.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
            self.events.put_nowait({"event": "died"})

    async def expect(self, event: str, within: float) -> dict[str, Any]:
        try:
            async with asyncio.timeout(within):
                message = await self.events.get()
        except TimeoutError:
            raise RuntimeError(
                f"generator worker {self.pid}: no {event!r} within {within:.0f} s"
            ) from None
        if message.get("event") != event:
            raise RuntimeError(f"generator worker {self.pid}: {message.get('event')}, not {event}")
        return message

    async def request(self, cmd: str, event: str, within: float = 60.0) -> dict[str, Any]:
        self.conn.send({"cmd": cmd})
        return await self.expect(event, within)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self.conn.close()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def _spawn(plan: LoadPlan, opts: LoadOptions, target: Any) -> list[_Worker]:
    ctx = multiprocessing.get_context("spawn")
    shares: list[list[dict[str, Any]]] = [[] for _ in range(plan.workers)]
    for spec in plan.specs():
        shares[spec.worker].append(
            {
                "index": spec.index,
                "channel": spec.channel,
                "talker": spec.talker,
                "join_at": spec.join_at,
                "device_id": spec.device_id,
                "token": target.token(spec.sub, spec.channel),
            }
        )
    workers = []
    for number, share in enumerate(shares):
        setup = {
            "url": target.ws_url,
            "participants": share,
            "poller": opts.poller,
            "shared": opts.shared_socket,
            "net": 1 + number,
            "phases": opts.phases,
            "connect_within": opts.connect_within,
            "verify_every": opts.verify_every,
            "nice": opts.nice,
            "talk": {"talk_seconds": plan.talk_seconds, "pause_seconds": plan.pause_seconds}
            if plan.pause_seconds > 0
            else None,
        }
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=worker_main, args=(theirs, setup), daemon=True)
        proc.start()
        theirs.close()
        workers.append(_Worker(proc, mine))
    return workers


def _figures(meters: list[CpuMeter]) -> ProcFigures:
    fig = ProcFigures()
    wall = 0.0
    for meter in meters:
        try:
            reading = meter.stop()
            fig.cpu_seconds += reading.cpu_seconds
            wall = max(wall, reading.wall_seconds)
            fig.rss_mb += read_rss_bytes(meter.pid) / 1e6
        except ProcessLookupError:
            continue
        fig.pids.append(meter.pid)
    fig.cores = fig.cpu_seconds / wall if wall > 0 else 0.0
    return fig


class _Sampler:
    """Soak series: one sample per interval of the server, its sidecar and the generator."""

    def __init__(self, target: Any, server_pid: int | None, gen_pids: list[int]) -> None:
        self.target = target
        self.server_pid = server_pid
        self.gen_pids = gen_pids
        self.series = SoakSeries()
        self.t0 = time.monotonic()
        self._cpu = CpuMeter(server_pid) if server_pid else None
        self._gen = [CpuMeter(pid) for pid in gen_pids]
        for meter in ([self._cpu] if self._cpu else []) + self._gen:
            meter.start()

    async def sample(self) -> None:
        m = prom.parse(await self.target.metrics())
        values: dict[str, float | None] = {
            "asyncio_tasks": prom.value(m, "voice_asyncio_tasks"),
            "sessions": prom.value(m, "voice_sessions", state="attached"),
            "transports": prom.value(m, "voice_media_transports"),
        }
        pid = self.server_pid
        if pid and self._cpu is not None:
            with contextlib.suppress(ProcessLookupError):
                values["server_rss_mb"] = round(read_rss_bytes(pid) / 1e6, 2)
                values["server_fds"] = count_fds(pid)
                values["server_threads"] = read_threads(pid)
                values["server_cpu_cores"] = round(self._cpu.peek().cores, 4)
                self._cpu.start()
        gen_cores = 0.0
        gen_rss = 0.0
        for meter in self._gen:
            with contextlib.suppress(ProcessLookupError):
                gen_cores += meter.peek().cores
                meter.start()
                gen_rss += read_rss_bytes(meter.pid) / 1e6
        values["generator_cpu_cores"] = round(gen_cores, 4)
        values["generator_rss_mb"] = round(gen_rss, 2)
        self.series.add(time.monotonic() - self.t0, values)


def _softirq_seconds() -> float:
    """CPU seconds the machine spent in soft interrupts (``/proc/stat``), where the kernel does
    most of the loopback delivery of datagrams, charged to no process."""
    with open("/proc/stat", encoding="ascii") as f:
        return int(f.readline().split()[7]) / CLK_TCK


async def _after_leave(target: Any, pid: int | None, within: float = 15.0) -> dict[str, float]:
    """Scrape once the server has no session left (or ``within`` has passed)."""
    deadline = time.monotonic() + within
    while True:
        m = prom.parse(await target.metrics())
        sessions = sum(prom.value(m, "voice_sessions", state=s) for s in ("attached", "detached"))
        if sessions == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.25)
    out = {
        "sessions": sessions,
        "transports": prom.value(m, "voice_media_transports"),
        "asyncio_tasks": prom.value(m, "voice_asyncio_tasks"),
        "open_fds": prom.value(m, "process_open_fds"),
    }
    if pid:
        with contextlib.suppress(ProcessLookupError):
            out["rss_mb"] = round(read_rss_bytes(pid) / 1e6, 1)
    return out


async def _measure(
    plan: LoadPlan, opts: LoadOptions, target: Any, workers: list[_Worker]
) -> dict[str, Any]:
    pid = target.pid
    gen_pids = [w.pid for w in workers] + [os.getpid()]
    # a server with --workers N: its media workers are the server too (CPU, RSS, their ports)
    media_pids = media_worker_pids(pid) if pid else []
    server_meters = [CpuMeter(p) for p in ([pid] if pid else []) + media_pids]
    sidecar_meters = (
        [CpuMeter(c) for c in child_pids(pid) if c not in media_pids]
        if pid and plan.transcribe
        else []
    )
    gen_meters = [CpuMeter(p) for p in gen_pids]
    m0 = prom.parse(await target.metrics())
    udp0 = read_udp_sockets()
    busy0 = read_machine_busy_seconds()
    softirq0 = _softirq_seconds()
    for meter in server_meters + sidecar_meters + gen_meters:
        meter.start()
    started = time.monotonic()
    marks = [(await w.request("mark", "marked"))["totals"] for w in workers]
    interval = opts.sample_seconds or max(5.0, plan.duration / 120.0)
    sampler = _Sampler(target, pid, gen_pids)
    end = started + plan.duration
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(interval, left))
        if end - time.monotonic() > interval / 4:
            await sampler.sample()
    server_fig = _figures(server_meters) if server_meters else None
    if server_fig is not None and pid:
        with contextlib.suppress(ProcessLookupError):
            server_fig.fds = count_fds(pid)
            server_fig.threads = read_threads(pid)
    sidecar_fig = _figures(sidecar_meters) if sidecar_meters else None
    gen_fig = _figures(gen_meters)
    wall = time.monotonic() - started
    machine = (read_machine_busy_seconds() - busy0) / wall
    softirq = (_softirq_seconds() - softirq0) / wall
    m1 = prom.parse(await target.metrics())
    udp1 = read_udp_sockets()
    snapshots = [await w.request("snapshot", "snapshot") for w in workers]
    ports = [port for s in snapshots for port in s["ports"]]
    # the server's media ports its participants were offered (serve --workers N: one a worker)
    media_ports = sorted(
        {port for s in snapshots for port in s.get("media_ports", ())}
        | ({target.media_port} if target.media_port else set())
    )
    server_drops = (
        total_drops(udp1, media_ports) - total_drops(udp0, media_ports) if media_ports else None
    )
    opts.say("measured; participants leave")
    for w in workers:
        await w.request("stop", "stopped", within=120.0)
    after = await _after_leave(target, pid)
    soak = summarize(sampler.series) if len(sampler.series) else None
    data = RunData(
        plan=plan,
        window_seconds=wall,
        m0=m0,
        m1=m1,
        server=server_fig,
        sidecar=sidecar_fig,
        generator=gen_fig,
        machine_cores=machine,
        softirq_cores=softirq,
        cpus=os.cpu_count() or 1,
        server_socket_drops=server_drops,
        generator_socket_drops=total_drops(udp1, ports) - total_drops(udp0, ports),
        marks=marks,
        snapshots=snapshots,
        soak=soak,
        after_leave=after,
    )
    return build_report(data)


async def _wait_for_transcriber(target: Any, say: Say, within: float = 120.0) -> None:
    """Until the server reports a linked transcriber sidecar (it loads its model first)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if prom.value(prom.parse(await target.metrics()), "voice_transcription_link_up") >= 1:
            return
        await asyncio.sleep(0.5)
    say(f"no transcriber linked after {within:.0f} s: bursts go to the spool only")


async def _run(plan: LoadPlan, opts: LoadOptions, tmp: Path) -> dict[str, Any]:
    raise_fd_limit()
    channels = plan.channel_names()
    target: StartedServer | RunningServer
    if opts.url is None:
        target = StartedServer(
            tmp, channels, transcribe=plan.transcribe, debug_objects=opts.debug_objects
        )
    else:
        assert opts.data_dir is not None
        target = RunningServer(opts.url, opts.data_dir, channels, pid=opts.server_pid)
    await target.start()
    if plan.transcribe:
        await _wait_for_transcriber(target, opts.say)
    opts.say(f"server {target.ws_url} (pid {target.pid}); starting {plan.workers} worker(s)")
    workers: list[_Worker] = []
    try:
        workers = _spawn(plan, opts, target)
        for w in workers:
            await w.expect("ready", 120.0)
        t0 = time.perf_counter_ns() + 200_000_000
        for w in workers:
            w.conn.send({"cmd": "join", "t0_ns": t0})
        opts.say(f"joining {plan.total} participants at {plan.join_rate:g}/s")
        within = plan.join_seconds + opts.connect_within + 30.0
        for w in workers:
            await w.expect("joined", within)
        opts.say(f"joined; warm-up {plan.warmup:g} s, then {plan.duration:g} s measured")
        await asyncio.sleep(plan.warmup)
        result = await _measure(plan, opts, target, workers)
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                w.conn.send({"cmd": "stop"})
            w.close()
        code = await target.stop()
    result["server"]["exit_code"] = code
    result["server"]["started_by_loadtest"] = target.started
    return result


def run_load(plan: LoadPlan, opts: LoadOptions) -> dict[str, Any]:
    """Run ``plan`` (no event loop may be running) and return the report."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        return asyncio.run(_run(plan, opts, Path(tmp)))
