"""``voice-server bench …``: the benchmark subcommands (argparse only; each benchmark is
imported when it runs)."""

from __future__ import annotations

import argparse
from typing import Any

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
        "--period", type=float, default=2.0, help="seconds between burst onsets (default 2.0)"
    )
    lat.add_argument("--tone-ms", type=int, default=300, help="burst length (default 300 ms)")
    lat.add_argument(
        "--headset-output",
        choices=("auto", "device", "decoded"),
        default="auto",
        help="where the headset client times an onset: 'device' = as its PulseAudio output "
        "plays it (a private null sink), 'decoded' = as it is handed to playout; auto: device "
        "when PulseAudio is installed",
    )
    lat.add_argument("--json", type=argparse.FileType("w"), help="also write the figures as JSON")


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
    raise ValueError(f"unknown benchmark {args.bench}")
