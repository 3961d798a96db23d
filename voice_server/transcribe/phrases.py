"""Phrase lists: the deployment-wide list (shelter, place and staff names, keywords) and each
channel's list (``settings.phrases``), and what each engine gets.

- **Vosk** gets the channel's list only, and only where a channel sets one: Vosk has no biasing,
  a list is a grammar that *restricts* recognition to those phrases (and ``[unk]``).
- **Whisper** gets the deployment list ∪ the channel's list (deployment first, duplicates once)
  as ``hotwords``: it *biases* recognition towards them and restricts nothing.

Where the deployment list is kept: :mod:`voice_server.transcribe.phrase_store` (on SQLite a
small JSON file in the data directory, ``asr_phrases.json``, written atomically by the admin
page and ``PUT /api/v1/asr/phrases``; on PostgreSQL the shared store's ``asr_phrases`` row, so
that every node and worker on any machine uses the same list); the sidecar reads it with a
short cache. Pure apart from the file.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "FILE",
    "MAX_LENGTH",
    "MAX_TERMS",
    "clean",
    "for_engine",
    "load",
    "save",
]

FILE = "asr_phrases.json"
MAX_TERMS = 200
MAX_LENGTH = 40


def clean(terms: Iterable[str]) -> list[str]:
    """Stripped, NFC, blanks and duplicates out, order kept; ValueError past the limits."""
    out: list[str] = []
    for raw in terms:
        term = unicodedata.normalize("NFC", str(raw)).strip()
        if not term or term in out:
            continue
        if len(term) > MAX_LENGTH or any(ch in term for ch in "\r\n\t"):
            raise ValueError(f"a phrase is at most {MAX_LENGTH} characters on one line: {term!r}")
        out.append(term)
    if len(out) > MAX_TERMS:
        raise ValueError(f"at most {MAX_TERMS} phrases")
    return out


def load(data_dir: Path) -> list[str]:
    try:
        data = json.loads((data_dir / FILE).read_text(encoding="utf-8"))
        return clean(p for p in data.get("phrases", []) if isinstance(p, str))
    except (OSError, ValueError, AttributeError):
        return []


def save(data_dir: Path, terms: Iterable[str]) -> list[str]:
    phrases = clean(terms)
    tmp = data_dir / f".{FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"phrases": phrases}, ensure_ascii=False, indent=1) + "\n")
    os.replace(tmp, data_dir / FILE)
    return phrases


def for_engine(
    uses_deployment: bool, deployment: list[str], channel: list[str] | None
) -> list[str] | None:
    """What the recognizer gets: the channel's list (Vosk), or deployment ∪ channel
    (Whisper); None when empty."""
    if not uses_deployment:
        return channel or None
    merged = list(dict.fromkeys([*deployment, *(channel or [])]))
    return merged or None
