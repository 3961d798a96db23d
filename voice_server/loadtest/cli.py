"""``voice-server loadtest``: the command line of the load tester (wired into ``cli.py``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from voice_server.argtypes import positive_float, positive_int

__all__ = ["add_parser", "run"]

PER_WORKER = 500  # participants one generator process drives comfortably here


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "loadtest",
        help="simulated participants in many channels: capacity, join rate, soak",
        description=(
            "Without --url a server is started as a child process on free ports (fresh data "
            "directory). With --url the running server on this machine is used: give its "
            "--data-dir (signing key; the plan's channels are added) and optionally its pid."
        ),
    )
    p.add_argument("--url", help="a running server: http://HOST:PORT or ws://HOST:PORT/ws")
    p.add_argument("--data-dir", type=Path, help="with --url: the server's data directory")
    p.add_argument("--server-pid", type=int, help="with --url: its pid (default: found by port)")
    p.add_argument("--channels", type=positive_int, required=True)
    p.add_argument("--per-channel", type=positive_int, required=True)
    p.add_argument("--talkers", type=int, required=True, help="talkers per channel")
    p.add_argument("--duration", type=positive_float, required=True, help="measured seconds")
    p.add_argument("--join-rate", type=positive_float, default=50.0, help="joins per second")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds after the last join")
    p.add_argument(
        "--workers",
        type=positive_int,
        help=f"generator processes (default: one per {PER_WORKER} participants)",
    )
    p.add_argument("--transcribe", choices=["on", "off"], default="off")
    p.add_argument(
        "--pause-seconds",
        type=float,
        default=0.0,
        help="talkers pause this long between bursts (default 0: they never pause)",
    )
    p.add_argument("--talk-seconds", type=positive_float, default=5.0, help="burst length")
    p.add_argument("--sample-seconds", type=positive_float, help="soak sampling interval")
    p.add_argument(
        "--debug-objects",
        action="store_true",
        help="started server counts live objects of its own classes in /metrics",
    )
    p.add_argument("--json", type=Path, help="write the result as JSON to this file")


def run(args: argparse.Namespace) -> int:
    from voice_server.loadtest.plan import LoadPlan
    from voice_server.loadtest.runner import LoadOptions, run_load
    from voice_server.loadtest.summary import format_summary

    total = args.channels * args.per_channel
    workers = args.workers or max(1, min(os.cpu_count() or 1, math.ceil(total / PER_WORKER)))
    try:
        plan = LoadPlan(
            channels=args.channels,
            per_channel=args.per_channel,
            talkers=args.talkers,
            duration=args.duration,
            join_rate=args.join_rate,
            warmup=args.warmup,
            workers=workers,
            transcribe=args.transcribe == "on",
            talk_seconds=args.talk_seconds,
            pause_seconds=args.pause_seconds,
        )
        opts = LoadOptions(
            url=args.url,
            data_dir=args.data_dir,
            server_pid=args.server_pid,
            sample_seconds=args.sample_seconds,
            debug_objects=args.debug_objects,
            say=lambda text: print(f"loadtest: {text}", file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"voice-server loadtest: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_load(plan, opts)
    except (RuntimeError, TimeoutError, ValueError, OSError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"voice-server loadtest: {text}", file=sys.stderr)
        return 1
    print(format_summary(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
