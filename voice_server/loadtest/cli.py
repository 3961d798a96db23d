"""``voice-server loadtest``: the command line of the load tester (wired into ``cli.py``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
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
        "--generator-nice",
        type=int,
        default=5,
        help="CPU priority of the generator processes relative to the server (default +5)",
    )
    p.add_argument(
        "--verify-every",
        type=positive_int,
        default=8,
        help="listeners authenticate and decrypt 1 received packet in N (default 8; all are "
        "counted from their clear header)",
    )
    p.add_argument(
        "--rx",
        choices=("shared", "poller"),
        default="shared",
        help="generator receive path: 'shared' (default on Linux: one socket per worker, a "
        "loopback address per participant, recvmmsg batches) or 'poller' (a socket per "
        "participant in one epoll)",
    )
    p.add_argument(
        "--phases",
        type=positive_int,
        default=20,
        help="send ticks per 20 ms frame in each generator worker (default 20: a tick every "
        "millisecond, so the talkers' packets arrive spread over the frame as independent "
        "phones' do; 4 sends a quarter of them at once every 5 ms)",
    )
    p.add_argument(
        "--debug-objects",
        action="store_true",
        help="started server counts live objects of its own classes in /metrics",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="run N times (a fresh server each time) and report medians of the valid runs",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run wait (at most this long) until the machine is otherwise idle",
    )
    p.add_argument("--json", type=Path, help="write the result as JSON to this file")


def wait_quiet(within: float, idle_below: float = 0.3, probe: float = 5.0) -> float:
    """Wait until the machine's busy time over ``probe`` seconds is below ``idle_below`` cores
    (or ``within`` seconds have passed); return the last reading."""
    from voice_server.bench.procstat import read_machine_busy_seconds

    deadline = time.monotonic() + within
    while True:
        before = read_machine_busy_seconds()
        time.sleep(probe)
        busy = (read_machine_busy_seconds() - before) / probe
        if busy < idle_below or time.monotonic() > deadline:
            return busy


def run(args: argparse.Namespace) -> int:
    from voice_server.loadtest.plan import LoadPlan
    from voice_server.loadtest.repeat import combine
    from voice_server.loadtest.runner import LoadOptions, run_load
    from voice_server.loadtest.summary import format_medians, format_summary

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
            verify_every=args.verify_every,
            shared_socket=args.rx == "shared",
            phases=args.phases,
            nice=args.generator_nice,
            say=lambda text: print(f"loadtest: {text}", file=sys.stderr, flush=True),
        )
    except ValueError as exc:
        print(f"voice-server loadtest: {exc}", file=sys.stderr)
        return 2
    results = []
    for k in range(args.repeat):
        if args.wait_quiet > 0:
            busy = wait_quiet(args.wait_quiet)
            print(f"loadtest: machine busy {busy:.2f} cores before run {k + 1}", file=sys.stderr)
        try:
            result = run_load(plan, opts)
        except (RuntimeError, TimeoutError, ValueError, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"voice-server loadtest: {text}", file=sys.stderr)
            if args.repeat == 1:
                return 1
            continue
        if args.repeat > 1:
            print(f"run {k + 1} of {args.repeat}:")
        print(format_summary(result), flush=True)
        results.append(result)
    document: dict[str, Any] = results[0] if args.repeat == 1 else combine(results)
    if args.repeat > 1:
        print(format_medians(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0 if results else 1
