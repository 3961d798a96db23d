"""The ``voice-server`` command line. ``main(argv=None)`` returns the exit code.

Every failure is one line on stderr and a non-zero exit: 2 for bad usage or input, 1 for a
failure of the environment (a port in use, an unreadable data directory).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voice_server import __version__, cli_admin
from voice_server.accounts.validate import AccountError
from voice_server.bench import transcribe as bench_transcribe
from voice_server.config import Config, ConfigError, load_config
from voice_server.identity.keys import KeyFileError, load_or_create_key
from voice_server.identity.tokens import Audience, Role, issue_token
from voice_server.loadtest import cli as loadtest_cli
from voice_server.store.channels import ChannelError
from voice_server.store.database import DatabaseError
from voice_server.transcribe import commands as transcribe_commands


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2
        raise CliError(f"{self.prog}: {message}")


def _add_state_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="data directory (default ./data)")
    p.add_argument("--config", type=Path, help="TOML configuration file")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voice-server", description="Hands-free group voice server")
    parser.add_argument("--version", action="version", version=f"voice-server {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the server")
    _add_state_args(serve)
    serve.add_argument("--host", help="HTTP listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8000)")
    serve.add_argument("--media-host", help="UDP media listen address")
    serve.add_argument("--media-port", type=int, help="UDP media port (default 40000)")
    serve.add_argument("--announce-ip", help="address put in SDP for the media port")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--demo",
        action="store_true",
        help="create the demo organisation and print demo credentials",
    )
    serve.add_argument(
        "--transcriber",
        action="store_true",
        default=None,
        help="also run (and restart) the transcriber sidecar as a child process",
    )
    serve.add_argument("--model", help="Vosk model for that sidecar (see `models list`)")

    token = sub.add_parser("token", help="print a signed token")
    _add_state_args(token)
    token.add_argument("--name", required=True, help="display name")
    token.add_argument("--sub", help="stable user id (default: the name)")
    token.add_argument(
        "--channel",
        action="append",
        required=True,
        help="channel the token covers (repeat; '*' for all)",
    )
    token.add_argument("--role", choices=[r.value for r in Role], default="staff")
    token.add_argument("--aud", choices=[a.value for a in Audience], default="join")
    token.add_argument("--ttl", type=int, default=36000, help="seconds (default 36000 = 10 h)")

    cli_admin.add_parsers(sub, _Parser, _add_state_args)
    transcribe_commands.add_parsers(sub, _add_state_args)
    bench = sub.add_parser("bench", help="benchmarks")
    bsub = bench.add_subparsers(dest="bench", required=True, parser_class=_Parser)
    bench_transcribe.add_parser(bsub)
    fwd = bsub.add_parser(
        "forward",
        help="server CPU and latency per forwarded packet vs an aiortc MediaRelay relay",
    )
    fwd.add_argument("--speakers", type=_positive_int, default=2)
    fwd.add_argument("--listeners", type=_positive_int, default=200)
    fwd.add_argument("--seconds", type=_positive_float, default=20.0, help="measured window")
    fwd.add_argument("--warmup", type=float, default=3.0, help="seconds skipped first")
    fwd.add_argument("--relay-speakers", type=_positive_int, default=2)
    fwd.add_argument(
        "--relay-listeners",
        type=_positive_int,
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
    loadtest_cli.add_parser(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _config(args: argparse.Namespace, **extra: Any) -> Config:
    return load_config(args.config, data_dir=args.data_dir, **extra)


def _cmd_token(args: argparse.Namespace) -> int:
    config = _config(args)
    key = load_or_create_key(config.data_dir)
    try:
        token = issue_token(
            key,
            sub=args.sub or args.name,
            name=args.name,
            channels=args.channel,
            role=Role(args.role),
            aud=Audience(args.aud),
            ttl_seconds=args.ttl,
            now=int(time.time()),
        )
    except ValueError as exc:
        raise CliError(f"voice-server token: {exc}") from None
    print(token)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from voice_server.server import run_server

    config = _config(
        args,
        host=args.host,
        port=args.port,
        media_host=args.media_host,
        media_port=args.media_port,
        announce_ip=args.announce_ip,
        log_level=args.log_level,
        transcriber=args.transcriber,
        model=args.model,
    )
    return run_server(config, demo=args.demo)


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from voice_server.bench.forward import format_summary, run_forward_bench

    if args.warmup < 0:
        raise CliError("voice-server bench forward: --warmup must be >= 0")
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
    print(format_summary(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "token":
            return _cmd_token(args)
        if args.command in ("users", "channels", "audit"):
            return cli_admin.run(args, _config(args))
        if args.command in transcribe_commands.COMMANDS:
            return transcribe_commands.run(args)
        if args.command == "bench" and args.bench == "transcribe":
            return bench_transcribe.main(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "loadtest":
            return loadtest_cli.run(args)
        raise CliError(f"voice-server: unknown command {args.command}")
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except (ConfigError, ChannelError, AccountError) as exc:
        print(f"voice-server: {exc}", file=sys.stderr)
        return 2
    except (DatabaseError, KeyFileError, OSError, cli_admin.ChainBroken) as exc:
        print(f"voice-server: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
