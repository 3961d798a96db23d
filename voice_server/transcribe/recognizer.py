"""The recognizer seam: a factory that owns one loaded model and makes a recognizer per burst.

:class:`VoskFactory` is the real one (one ``vosk.Model`` shared by every ``KaldiRecognizer``;
Vosk releases the GIL while decoding, so a thread pool sized to the cores scales). Tests use a
fake implementing the same protocols. Audio in is 16-bit mono PCM at ``sample_rate``.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from voice_server.calllog.model import Word

__all__ = ["RecResult", "Recognizer", "RecognizerFactory", "VoskFactory", "model_sample_rate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecResult:
    text: str
    words: tuple[Word, ...] = ()


class Recognizer(Protocol):
    def accept(self, pcm: bytes) -> None: ...

    def partial(self) -> str: ...

    def final(self) -> RecResult: ...


class RecognizerFactory(Protocol):
    name: str
    language: str
    sample_rate: int

    def create(self, phrases: list[str] | None = None) -> Recognizer: ...


def model_sample_rate(path: Path, default: int = 16000) -> int:
    """The model's sample rate from ``conf/mfcc.conf`` (``--sample-frequency``), else 16 kHz."""
    conf = path / "conf" / "mfcc.conf"
    try:
        for line in conf.read_text().splitlines():
            if line.strip().startswith("--sample-frequency="):
                return int(float(line.split("=", 1)[1]))
    except (OSError, ValueError):
        pass
    return default


def _words(result: dict[str, Any]) -> tuple[Word, ...]:
    return tuple(
        Word(str(w.get("word", "")), float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
        for w in result.get("result", [])
        if "start" in w and "end" in w
    )


class _VoskRecognizer:
    def __init__(self, rec: Any) -> None:
        self._rec = rec
        self._texts: list[str] = []
        self._words: list[Word] = []

    def accept(self, pcm: bytes) -> None:
        if self._rec.AcceptWaveform(pcm):  # an endpoint inside the burst: keep that segment
            self._keep(json.loads(self._rec.Result()))

    def _keep(self, result: dict[str, Any]) -> None:
        text = str(result.get("text", "")).strip()
        if text:
            self._texts.append(text)
        self._words.extend(_words(result))

    def partial(self) -> str:
        current = str(json.loads(self._rec.PartialResult()).get("partial", "")).strip()
        return " ".join([*self._texts, current]).strip()

    def final(self) -> RecResult:
        self._keep(json.loads(self._rec.FinalResult()))
        return RecResult(" ".join(self._texts), tuple(self._words))


class VoskFactory:
    """One loaded Vosk model; ``create`` is thread-safe."""

    def __init__(self, path: Path, *, name: str, language: str) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.path = path
        self.name = name
        self.language = language
        self.sample_rate = model_sample_rate(path)
        self.model = vosk.Model(str(path))
        self._lock = threading.Lock()

    def create(self, phrases: list[str] | None = None) -> Recognizer:
        with self._lock:
            if phrases:
                # Vosk has no biasing: a phrase list is a grammar that limits recognition to
                # these phrases (and [unk]); models without a dynamic graph ignore it.
                grammar = json.dumps([*phrases, "[unk]"], ensure_ascii=False)
                rec = self._vosk.KaldiRecognizer(self.model, self.sample_rate, grammar)
            else:
                rec = self._vosk.KaldiRecognizer(self.model, self.sample_rate)
        rec.SetWords(True)
        return _VoskRecognizer(rec)
