"""``voice-server bench …``: the benchmark subcommands (argparse only; each benchmark is
imported when it runs)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from voice_server.argtypes import positive_float, positive_int

__all__ = ["add_bench_parser", "run_bench"]


def add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench", required=True, parser_class=type(bench))
    lat = bsub.add_parser(
        "latency",
        help="mouth-to-ear latency through the server: browser -> headset client and "
        "browser -> browser (needs root, Chromium, Playwright)",
    )
    lat.add_argument("--bursts", type=int, default=50, help="talk bursts to time (default 50)")
    lat.add_argument(
        "--period", type=float, default=3.0, help="seconds between burst onsets (default 3.0)"
    )
    lat.add_argument(
        "--tone-ms",
        type=int,
        default=1000,
        help="burst length (default 1000 ms, a short utterance; 300 ms bursts are too few "
        "packets for Chromium's jitter buffer to leave its start-up delay)",
    )
    lat.add_argument(
        "--headset-output",
        choices=("auto", "device", "decoded"),
        default="auto",
        help="where the headset client times an onset: 'device' = as its PulseAudio output "
        "plays it (a private null sink), 'decoded' = as it is handed to playout; auto: device "
        "when PulseAudio is installed",
    )
    lat.add_argument("--json", type=argparse.FileType("w"), help="also write the figures as JSON")
    _add_forward(bsub)
    wrk = bsub.add_parser(
        "workers",
        help="serve --workers 2 vs 1 at the same load: server CPU per copy, the split, and the "
        "relay hop's added latency",
    )
    wrk.add_argument("--channels", type=positive_int, default=2, help="(default 2)")
    wrk.add_argument("--members", type=positive_int, default=20, help="per channel (default 20)")
    wrk.add_argument("--seconds", type=positive_float, default=10.0, help="measured window")
    wrk.add_argument("--warmup", type=float, default=2.0, help="seconds skipped first")
    wrk.add_argument(
        "--capacity",
        choices=("auto", "on", "off"),  # workers.CAPACITY_MODES (bench modules load lazily)
        default="auto",
        help="the capacity ratio (participants held at p99 <= 5 ms, loss 0, by one worker and "
        "two, each pinned to cores of its own): auto = only with >= 4 usable cores; on = even "
        "with fewer (unpinned: shows the machinery works, not a measurement)",
    )
    wrk.add_argument("--capacity-members", type=positive_int, default=20, help="per channel")
    wrk.add_argument("--capacity-start", type=positive_int, default=200, help="participants")
    wrk.add_argument("--capacity-step", type=positive_int, default=200, help="participants")
    wrk.add_argument("--capacity-limit", type=positive_int, default=4000, help="participants")
    wrk.add_argument(
        "--capacity-seconds", type=positive_float, default=10.0, help="measured, each step"
    )
    wrk.add_argument("--json", type=Path, help="write the result as JSON to this file")
    clu = bsub.add_parser(
        "cluster",
        help="three nodes on Redis and PostgreSQL: a channel across them (hop latency, CPU per "
        "copy vs one node), a node killed and hung (clients back), Redis down 15 s",
    )
    clu.add_argument("--members", type=positive_int, default=20, help="per node (default 20)")
    clu.add_argument("--seconds", type=positive_float, default=10.0, help="measured window")
    clu.add_argument("--outage", type=positive_float, default=15.0, help="Redis down, s (15)")
    clu.add_argument(
        "--quick", action="store_true", help="a short run (3 members per node, 2 s windows, "
        "Redis down 3 s): for tests, not figures",
    )  # fmt: skip
    clu.add_argument("--redis-url", help="use this Redis (no outage phase: not ours to stop)")
    clu.add_argument("--database-url", help="use this PostgreSQL database (postgresql://…)")
    clu.add_argument("--json", type=Path, help="write the result as JSON to this file")
    net = bsub.add_parser(
        "network",
        help="mouth-to-ear browser -> browser per media path (UDP, ICE-TCP, TURN over TLS) at "
        "0 %% and 2 %% loss (needs root, Chromium, coturn, nftables)",
    )
    net.add_argument("--bursts", type=positive_int, default=10, help="per condition (10)")
    net.add_argument("--period", type=positive_float, default=2.5, help="seconds per burst (2.5)")
    net.add_argument(
        "--paths", default="udp,tcp,turn-tls", help="comma-separated (default udp,tcp,turn-tls)"
    )
    net.add_argument("--loss", default="0,2", help="loss percentages, comma-separated (0,2)")
    net.add_argument(
        "--moves",
        type=int,
        default=2,
        help="network changes mid-talk per --change scenario, UDP (2; 0: none)",
    )
    net.add_argument(
        "--change", default="both", choices=("move", "handover", "both"),
        help="the network change: move (the phones' only address moves), handover (a second "
        "network up from the start, the first cut: Wi-Fi -> LTE) or both (both)",
    )  # fmt: skip
    net.add_argument(
        "--speech-seconds", type=float, default=12.0,
        help="per row, seconds of spoken Japanese recorded at the browser listener for the "
        "speech score (STOI, PESQ; needs the quality and tts extras); 0: no score (12)",
    )  # fmt: skip
    net.add_argument(
        "--jitter", type=float, default=0.0,
        help="ms: also UDP rows with each datagram delayed uniformly by 0..2x this (a user-space "
        "relay; this kernel has no netem), per --direction; 0: none (0; --full: 40)",
    )  # fmt: skip
    net.add_argument(
        "--red", default="on", help="audio RED per condition: on, off or on,off (default on)"
    )
    net.add_argument(
        "--direction", default="both",
        help="where the loss is: up (the phone's uplink), down, both; comma-separated (both)",
    )  # fmt: skip
    net.add_argument(
        "--pattern", default="random",
        help="random, bursty (a 10 %% Gilbert model row) or random,bursty (random)",
    )  # fmt: skip
    net.add_argument(
        "--full", action="store_true",
        help="the whole matrix: every path, 0/5/10/20 %% random and 10 %% bursty, uplink and "
        "downlink, RED on and off (about an hour)",
    )  # fmt: skip
    net.add_argument("--json", type=Path, help="write the result as JSON to this file")
    red = bsub.add_parser(
        "red", help="forwarding CPU per copy with audio RED on (two variants) against off"
    )
    red.add_argument("--listeners", type=positive_int, default=200, help="per mode (200)")
    red.add_argument("--packets", type=positive_int, default=100, help="per block (100)")
    red.add_argument("--rounds", type=positive_int, default=10, help="blocks per mode (10)")
    red.add_argument("--json", type=Path, help="write the result as JSON to this file")
    pri = bsub.add_parser(
        "priority",
        help="a supervisor cutting in with every slot busy: onset to first copy and to duck",
    )
    pri.add_argument("--cutins", type=positive_int, default=50, help="cut-ins (default 50)")
    pri.add_argument("--talk-ms", type=positive_int, default=400, help="each cut-in's length")
    pri.add_argument("--json", type=Path, help="write the result as JSON to this file")
    con = bsub.add_parser(
        "console",
        help="the dispatcher console: all-call vs plain forwarding per copy; monitor -> audio",
    )
    con.add_argument("--channels", type=positive_int, default=10, help="all-call channels")
    con.add_argument("--members", type=positive_int, default=20, help="listeners per channel")
    con.add_argument("--seconds", type=positive_float, default=10.0, help="each window")
    con.add_argument("--rounds", type=positive_int, default=3, help="windows of each mode")
    con.add_argument("--monitors", type=positive_int, default=20, help="monitor samples")
    con.add_argument("--json", type=Path, help="write the result as JSON to this file")
    ann = bsub.add_parser(
        "announce", help="a typed announcement: to its first packet at a listener, and TTS RTF"
    )
    ann.add_argument("--sentences", type=positive_int, default=20, help="(default 20, at most 20)")
    ann.add_argument("--json", type=Path, help="write the result as JSON to this file")
    alerts = bsub.add_parser(
        "alerts",
        help="emergency and spoken keyword to a dashboard's alert stream (vs 1 s polling) and "
        "to a signed webhook",
    )
    alerts.add_argument("--rounds", type=positive_int, default=30, help="of each (default 30)")
    alerts.add_argument("--json", type=Path, help="write the result as JSON to this file")
    from voice_server.bench import queue, relay_packet, search, transcribe

    transcribe.add_parser(bsub)
    search.add_parser(bsub)
    queue.add_parser(bsub)
    relay_packet.add_parser(bsub)


def _add_forward(bsub: Any) -> None:
    fwd = bsub.add_parser(
        "forward",
        help="server CPU and latency per forwarded packet vs an aiortc MediaRelay relay",
    )
    fwd.add_argument("--speakers", type=positive_int, default=2)
    fwd.add_argument("--listeners", type=positive_int, default=200)
    fwd.add_argument("--seconds", type=positive_float, default=20.0, help="measured window")
    fwd.add_argument("--warmup", type=float, default=3.0, help="seconds skipped first")
    fwd.add_argument("--relay-speakers", type=positive_int, default=2)
    fwd.add_argument(
        "--relay-listeners",
        type=positive_int,
        default=6,
        help="relay baseline size (default 6: what stock aiortc sustains here)",
    )
    fwd.add_argument(
        "--relay-fast-audio-level",
        action="store_true",
        help="replace aiortc's pure-Python audio-level loop in the relay by a C one",
    )
    fwd.add_argument("--no-relay", action="store_true", help="skip the relay baseline")
    fwd.add_argument(
        "--no-listener-dtx",
        action="store_true",
        help="listeners send nothing (default: a DTX frame every 400 ms, as browsers do)",
    )
    fwd.add_argument("--json", type=Path, help="write the result as JSON to this file")


def _run_forward(args: argparse.Namespace) -> int:
    from voice_server.bench.forward import format_summary, run_forward_bench

    if args.warmup < 0:
        print("voice-server bench forward: --warmup must be >= 0", file=sys.stderr)
        return 2
    try:
        result = run_forward_bench(
            args.speakers,
            args.listeners,
            args.seconds,
            args.warmup,
            relay=not args.no_relay,
            relay_speakers=args.relay_speakers,
            relay_listeners=args.relay_listeners,
            relay_fast_audio_level=args.relay_fast_audio_level,
            listener_dtx=not args.no_listener_dtx,
        )
    except RuntimeError as exc:
        print(f"voice-server bench forward: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return _report(result, format_summary(result), args.json)


def _run_cluster(args: argparse.Namespace) -> int:
    import dataclasses

    from voice_server.bench.cluster import Options, format_summary, run_cluster_bench

    opts = Options.quick() if args.quick else Options()
    if not args.quick:
        opts = dataclasses.replace(
            opts, members=args.members, seconds=args.seconds, outage=args.outage
        )
    if opts.members < 2:
        print("voice-server bench cluster: --members must be at least 2", file=sys.stderr)
        return 2
    try:
        result = run_cluster_bench(opts, redis_url=args.redis_url, database_url=args.database_url)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"voice-server bench cluster: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return _report(result, format_summary(result), args.json)


def _run_priority(args: argparse.Namespace) -> int:
    from voice_server.bench.priority import format_summary, run_priority_bench

    try:
        result = run_priority_bench(args.cutins, args.talk_ms)
    except RuntimeError as exc:
        print(f"voice-server bench priority: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return _report(result, format_summary(result), args.json)


def _run_network(args: argparse.Namespace) -> int:
    from voice_server.bench.network import (
        DIRECTIONS,
        PATHS,
        PATTERNS,
        NetworkOptions,
        format_summary,
        full_matrix,
        run_network,
    )

    paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    try:
        losses = tuple(float(x) / 100 for x in args.loss.split(",") if x.strip())
    except ValueError:
        losses = ()
    if not paths or any(p not in PATHS for p in paths) or not losses:
        print(
            "voice-server bench network: --paths takes udp,tcp,turn-tls; --loss percentages",
            file=sys.stderr,
        )
        return 2
    if any(not 0 <= x <= 0.5 for x in losses) or args.period < 2.2:
        print(
            "voice-server bench network: --loss within 0..50, --period at least 2.2 s",
            file=sys.stderr,
        )
        return 2
    reds = tuple(x.strip() == "on" for x in args.red.split(",") if x.strip())
    if not reds or any(x.strip() not in ("on", "off") for x in args.red.split(",")):
        print("voice-server bench network: --red takes on, off or on,off", file=sys.stderr)
        return 2
    directions = tuple(x.strip() for x in args.direction.split(",") if x.strip())
    patterns = tuple(x.strip() for x in args.pattern.split(",") if x.strip())
    if (
        not directions
        or not set(directions) <= set(DIRECTIONS)
        or not patterns
        or not (set(patterns) <= set(PATTERNS))
    ):
        print("voice-server bench network: --direction up,down,both; --pattern random,bursty",
              file=sys.stderr)  # fmt: skip
        return 2
    opts = NetworkOptions(
        bursts=args.bursts,
        period=args.period,
        paths=paths,
        losses=losses,
        reds=reds,
        moves=max(0, args.moves),
        changes=("move", "handover") if args.change == "both" else (args.change,),
        directions=directions,
        patterns=patterns,
        speech_seconds=max(0.0, args.speech_seconds),
        jitter_ms=max(0.0, args.jitter),
    )
    if args.full:
        opts = full_matrix(opts)
    try:
        result = run_network(opts)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"voice-server bench network: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    return _report(result, format_summary(result), args.json)


def _report(result: dict[str, Any], summary: str, path: Path | None) -> int:
    print(summary)
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    if args.bench == "latency":
        from voice_server.bench.latency import LatencyOptions, main_latency

        return main_latency(
            LatencyOptions(
                bursts=args.bursts,
                period=args.period,
                tone_ms=args.tone_ms,
                headset_output=args.headset_output,
            ),
            json_out=args.json,
        )
    if args.bench == "forward":
        return _run_forward(args)
    if args.bench == "network":
        return _run_network(args)
    if args.bench == "cluster":
        return _run_cluster(args)
    if args.bench == "workers":
        from voice_server.bench.capacity import CapacityPlan
        from voice_server.bench.workers import format_summary as workers_summary
        from voice_server.bench.workers import run_workers_bench

        try:
            plan = CapacityPlan(
                per_channel=args.capacity_members,
                start=args.capacity_start,
                step=args.capacity_step,
                limit=args.capacity_limit,
                seconds=args.capacity_seconds,
            )
            result = run_workers_bench(
                args.channels,
                args.members,
                args.seconds,
                args.warmup,
                capacity_mode=args.capacity,
                capacity_plan=plan,
            )
        except (RuntimeError, ValueError) as exc:
            print(f"voice-server bench workers: {exc}".splitlines()[0], file=sys.stderr)
            return 1
        return _report(result, workers_summary(result), args.json)
    if args.bench == "priority":
        return _run_priority(args)
    if args.bench == "console":
        from voice_server.bench.console import format_summary as console_summary
        from voice_server.bench.console import run_console_bench

        try:
            result = run_console_bench(
                args.channels, args.members, args.seconds, args.rounds, args.monitors
            )
        except RuntimeError as exc:
            print(f"voice-server bench console: {exc}".splitlines()[0], file=sys.stderr)
            return 1
        return _report(result, console_summary(result), args.json)

    if args.bench == "red":
        from voice_server.bench.red import format_summary as red_summary
        from voice_server.bench.red import run_red_bench

        result = run_red_bench(args.listeners, packets=args.packets, rounds=args.rounds)
        return _report(result, red_summary(result), args.json)
    if args.bench == "announce":
        from voice_server.bench.announce import format_summary, run_announce_bench

        try:
            result = run_announce_bench(args.sentences)
        except RuntimeError as exc:
            print(f"voice-server bench announce: {exc}".splitlines()[0], file=sys.stderr)
            return 1
        return _report(result, format_summary(result), args.json)
    if args.bench == "alerts":
        from voice_server.bench.alerts import format_summary as alerts_summary
        from voice_server.bench.alerts import run_alerts_bench

        try:
            figures = run_alerts_bench(args.rounds)
        except RuntimeError as exc:
            print(f"voice-server bench alerts: {exc}".splitlines()[0], file=sys.stderr)
            return 1
        return _report(figures, alerts_summary(figures), args.json)
    if args.bench == "transcribe":
        from voice_server.bench import transcribe

        return transcribe.main(args)
    if args.bench == "search":
        from voice_server.bench import search

        return search.main(args)
    if args.bench == "queue":
        from voice_server.bench import queue

        return queue.main(args)
    if args.bench == "relay-packet":
        from voice_server.bench import relay_packet

        return relay_packet.main(args)
    raise ValueError(f"unknown benchmark {args.bench}")
