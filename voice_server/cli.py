"""The ``voice-server`` command line. ``main(argv=None)`` returns the exit code.

Every failure is one line on stderr and a non-zero exit: 2 for bad usage or input, 1 for a
failure of the environment (a port in use, an unreadable data directory).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from voice_server import __version__, cli_admin
from voice_server.accounts.validate import AccountError
from voice_server.backends import commands as db_commands
from voice_server.backends.seam import open_database, open_job_locks, purge_store
from voice_server.bench.cli import add_bench_parser, run_bench
from voice_server.cluster import commands as cluster_commands
from voice_server.cluster.startup import StartRefused
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
    serve.add_argument(
        "--media-tcp-port",
        type=int,
        help="ICE-TCP media port for browsers on networks that drop UDP (default: the media "
        "port's number, on TCP; 0 disables)",
    )
    serve.add_argument("--announce-ip", help="address put in SDP for the media port")
    serve.add_argument(
        "--workers",
        help="media processes, 1..64 or auto (the usable cores); worker i forwards on "
        "media port + i (default 1)",
    )
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--tls-cert", type=Path, help="HTTPS: PEM certificate (chain) file")
    serve.add_argument("--tls-key", type=Path, help="HTTPS: PEM private key file")
    serve.add_argument(
        "--database-url", help="sqlite:PATH or postgresql://… (default: SQLite in the data dir)"
    )
    serve.add_argument("--node-id", help="this node's name in a cluster (with --redis-url)")
    serve.add_argument(
        "--redis-url",
        help="the cluster's Redis, redis://host:port/db (needs --node-id and a PostgreSQL "
        "--database-url; default: one box, no Redis)",
    )
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
    serve.add_argument("--model", help="model for that sidecar (see `models list`)")
    serve.add_argument(
        "--asr-engine",
        choices=["vosk", "whisper"],
        help="that sidecar's recognizer engine (default vosk; whisper: pip extra [whisper])",
    )
    serve.add_argument("--asr-language", help="that sidecar's language (Whisper default: ja)")

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
    purge = sub.add_parser("purge", help="remove call-log data past each channel's retention")
    _add_state_args(purge)
    purge.add_argument("--dry-run", action="store_true", help="count, change nothing")
    transcribe_commands.add_parsers(sub, _add_state_args)
    cert = sub.add_parser(
        "tls-cert", help="create a self-signed HTTPS certificate for this machine (if none)"
    )
    _add_state_args(cert)
    cert.add_argument(
        "--name", action="append", default=[], help="extra host name or address (repeat)"
    )
    cert.add_argument("--force", action="store_true", help="replace an existing certificate")

    db_commands.add_parser(sub, _Parser, _add_state_args)
    cluster_commands.add_parser(sub, _add_state_args)
    add_bench_parser(sub)
    loadtest_cli.add_parser(sub)
    return parser


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
        media_tcp_port=args.media_tcp_port,
        announce_ip=args.announce_ip,
        workers=args.workers,
        log_level=args.log_level,
        transcriber=args.transcriber,
        model=args.model,
        asr_engine=args.asr_engine,
        asr_language=args.asr_language,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        database_url=args.database_url,
        node_id=args.node_id,
        redis_url=args.redis_url,
    )
    for path in (config.tls_cert, config.tls_key):
        if path is not None and not path.is_file():
            raise CliError(f"voice-server serve: no such file: {path}")
    return run_server(config, demo=args.demo)


def _cmd_purge(args: argparse.Namespace) -> int:
    from voice_server.audit.log import AuditLog
    from voice_server.calllog.purge import Purger
    from voice_server.calllog.schedule import JOB

    config = _config(args)
    db = open_database(config.database_url, config.data_dir)
    purger = Purger(config.data_dir, AuditLog(db), purge_store(db))
    locks = open_job_locks(db)  # PostgreSQL: never beside a node's scheduled purge
    try:
        with locks.step(JOB) as held:
            if not held and not args.dry_run:
                raise CliError("voice-server purge: a node is purging now; try again later")
            now = int(time.time() * 1000)
            report = purger.run(now, actor=cli_admin.cli_caller(), dry_run=args.dry_run)
    finally:
        locks.close()
    print(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
    return 0


def _cmd_tls_cert(args: argparse.Namespace) -> int:
    from voice_server.tlscert import ensure_self_signed, trust_instructions

    config = _config(args)
    files = ensure_self_signed(config.data_dir, args.name, force=args.force)
    for line in trust_instructions(files):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "serve":
            return _cmd_serve(args)
        if args.command == "token":
            return _cmd_token(args)
        if args.command == "purge":
            return _cmd_purge(args)
        if args.command in ("users", "channels", "audit"):
            return cli_admin.run(args, _config(args))
        if args.command in transcribe_commands.COMMANDS:
            return transcribe_commands.run(args)
        if args.command == "tls-cert":
            return _cmd_tls_cert(args)
        if args.command == db_commands.COMMAND:
            return db_commands.run(
                args, _config(args, database_url=getattr(args, "database_url", None))
            )
        if args.command == cluster_commands.COMMAND:
            return cluster_commands.run(args, _config(args))
        if args.command == "bench":
            return run_bench(args)
        if args.command == "loadtest":
            return loadtest_cli.run(args)
        raise CliError(f"voice-server: unknown command {args.command}")
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except (ConfigError, ChannelError, AccountError) as exc:
        print(f"voice-server: {exc}", file=sys.stderr)
        return 2
    except (DatabaseError, KeyFileError, OSError, cli_admin.ChainBroken, StartRefused) as exc:
        print(f"voice-server: {exc}", file=sys.stderr)
        return 1
    except cluster_commands.DrainFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(main())
