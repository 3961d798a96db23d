"""The recognizer seam: a factory that owns one loaded model and lends a recognizer per burst.

:class:`VoskFactory` is the real one (one ``vosk.Model`` shared by every ``KaldiRecognizer``;
Vosk releases the GIL while decoding, so a thread pool sized to the cores scales). Tests use a
fake implementing the same protocols. Audio in is 16-bit mono PCM at ``sample_rate``. A burst
takes a recognizer with :meth:`RecognizerFactory.create` and gives it back with
:meth:`Recognizer.close` once its final result is read.

Two properties of Vosk 0.3.45 with graph-composing models (``HCLr.fst`` + ``Gr.fst``, as the
small models are) shape this module (measured: README, "bench transcribe"):

- **Recognizers are pooled.** A ``KaldiRecognizer`` composes its decoding graph lazily and keeps
  what it composed; most of the CPU of a fresh recognizer goes into that composition (3–5× the
  cost of one that has decoded before). After ``FinalResult`` the next ``AcceptWaveform`` starts
  a new feature pipeline and decoder on the same graph, so a pooled recognizer gives exactly the
  text of a fresh one. The pool keeps up to ``max_idle`` idle recognizers (~100–200 MB each
  once warm) and drops one after ``recycle_seconds`` of audio to bound its graph cache.
- **A fixed dither instead of Kaldi's.** Kaldi's feature extraction adds random noise
  (``--dither``, 1.0 unless the model's ``mfcc.conf`` says otherwise) seeded from the
  process-wide C ``rand()``, which every recognizer in the process advances: the same audio gave
  different text depending on what the process had decoded before (up to ~20 % CER apart on
  speech the model does not recognise well), so live, catch-up and direct decodings of a clip
  disagreed. The model is loaded with ``--dither=0`` (a copy of its ``conf`` with that line
  added; the model directory itself is never changed) and :func:`dithered` adds the same kind of
  noise (Gaussian, σ = 1 sample step) from a fixed seeded table, indexed by the sample's place in
  the burst: the text is a function of the burst's audio alone. (With no dither at all, a WAV
  with digital silence between its sentences came out with junk tokens such as ``[0] - [5]``.)
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import tempfile
import threading
from array import array
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import Any, Protocol

from voice_server.calllog.model import Word

__all__ = [
    "PoolStats",
    "RecResult",
    "Recognizer",
    "RecognizerFactory",
    "VoskFactory",
    "dithered",
    "model_sample_rate",
    "without_dither",
]

log = logging.getLogger(__name__)
MAX_IDLE = 12
RECYCLE_SECONDS = 4 * 3600.0
DITHER_SEED = 20_240_601
DITHER_SAMPLES = 65_536
_noise: array[int] | None = None


def dithered(pcm: bytes, pos: int) -> bytes:
    """16-bit PCM (native byte order, as PyAV and Vosk use it) plus the fixed dither noise for
    samples ``pos, pos + 1, …`` of a burst."""
    global _noise
    if _noise is None:
        rng = random.Random(DITHER_SEED)
        _noise = array("h", (round(rng.gauss(0.0, 1.0)) for _ in range(DITHER_SAMPLES)))
    noise = _noise
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) & ~1])
    n, start = len(samples), pos % DITHER_SAMPLES
    seg = noise[start : start + n]
    while len(seg) < n:
        seg += noise[: n - len(seg)]
    try:
        out = array("h", map(add, samples, seg))
    except OverflowError:  # a sample at full scale: clip
        pairs = zip(samples, seg, strict=True)
        out = array("h", (min(32767, max(-32768, a + b)) for a, b in pairs))
    return out.tobytes()


@dataclass(frozen=True, slots=True)
class RecResult:
    text: str
    words: tuple[Word, ...] = ()
    gap: str = ""  # a suppressed result (no_speech, prompt_echo): recorded as a gap, not text


class Recognizer(Protocol):
    def accept(self, pcm: bytes) -> None: ...

    def partial(self) -> str: ...

    def final(self) -> RecResult: ...

    def close(self) -> None: ...


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


def without_dither(model: Path, into: Path) -> Path | None:
    """A view of ``model`` in ``into`` with ``--dither=0`` in its MFCC config, or None if the
    model has no ``mfcc.conf`` (then it is loaded as it is). Everything else is symlinked."""
    for rel in (Path("conf/mfcc.conf"), Path("mfcc.conf")):
        if (model / rel).is_file():
            break
    else:
        return None
    view = into / "model"
    _mirror(model, view, rel.parts)
    lines = (model / rel).read_text().splitlines()
    kept = [line for line in lines if not line.strip().startswith("--dither")]
    (view / rel).write_text("\n".join([*kept, "--dither=0.0"]) + "\n")
    return view


def _mirror(src: Path, dst: Path, skip: tuple[str, ...]) -> None:
    """``dst`` mirrors ``src`` with symlinks, except the file at path ``skip`` (left out)."""
    dst.mkdir()
    for entry in src.iterdir():
        if entry.name != skip[0]:
            (dst / entry.name).symlink_to(entry.resolve())
        elif len(skip) > 1:
            _mirror(entry, dst / entry.name, skip[1:])


def _words(result: dict[str, Any], base: float) -> tuple[Word, ...]:
    return tuple(
        Word(
            str(w.get("word", "")),
            max(0.0, round(float(w["start"]) - base, 3)),
            max(0.0, round(float(w["end"]) - base, 3)),
            float(w.get("conf", 1.0)),
        )
        for w in result.get("result", [])
        if "start" in w and "end" in w
    )


@dataclass(slots=True)
class PoolStats:
    created: int = 0
    reused: int = 0
    dropped: int = 0
    idle: int = 0


class _VoskRecognizer:
    """One burst's view of a pooled ``KaldiRecognizer``; used by one thread at a time."""

    def __init__(self, rec: Any, owner: VoskFactory, key: str) -> None:
        self._rec = rec
        self._owner = owner
        self.key = key
        self.fed = 0  # samples fed since the KaldiRecognizer was made
        self._base = 0.0
        self._pos = 0  # samples fed in this burst
        self._open = False
        self._texts: list[str] = []
        self._words: list[Word] = []

    def begin(self) -> None:
        # Vosk counts word times from the recognizer's first sample, across utterances
        self._base = self.fed / self._owner.sample_rate
        self._pos = 0
        self._open = True
        self._texts, self._words = [], []

    def accept(self, pcm: bytes) -> None:
        if not self._owner.kaldi_dither:
            pcm = dithered(pcm, self._pos)
        self._pos += len(pcm) // 2
        self.fed += len(pcm) // 2
        if self._rec.AcceptWaveform(pcm):  # an endpoint inside the burst: keep that segment
            self._keep(json.loads(self._rec.Result()))

    def _keep(self, result: dict[str, Any]) -> None:
        text = str(result.get("text", "")).strip()
        if text:
            self._texts.append(text)
        self._words.extend(_words(result, self._base))

    def partial(self) -> str:
        current = str(json.loads(self._rec.PartialResult()).get("partial", "")).strip()
        return " ".join([*self._texts, current]).strip()

    def final(self) -> RecResult:
        self._keep(json.loads(self._rec.FinalResult()))
        self._open = False
        return RecResult(" ".join(self._texts), tuple(self._words))

    def close(self) -> None:
        """Back to the pool; a burst given up half-way is finalized first, so the next one
        starts from a fresh feature pipeline and decoder."""
        if self._open:
            self._rec.FinalResult()
            self._open = False
        self._owner._release(self)


class VoskFactory:
    """One loaded Vosk model and a pool of recognizers; ``create`` is thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        language: str,
        kaldi_dither: bool = False,
        max_idle: int = MAX_IDLE,
        recycle_seconds: float = RECYCLE_SECONDS,
    ) -> None:
        import vosk

        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.path = path
        self.name = name
        self.language = language
        self.sample_rate = model_sample_rate(path)
        self.max_idle = max(0, max_idle)
        self.recycle_samples = int(recycle_seconds * self.sample_rate)
        self.stats = PoolStats()
        self.kaldi_dither = kaldi_dither
        self.model = self._load(path, kaldi_dither)
        self._lock = threading.Lock()
        self._idle: list[_VoskRecognizer] = []  # most recently used last

    def _load(self, path: Path, kaldi_dither: bool) -> Any:
        if kaldi_dither:
            return self._vosk.Model(str(path))
        tmp = Path(tempfile.mkdtemp(prefix="vosk-model-"))
        try:
            view = without_dither(path, tmp)
            if view is None:
                log.warning("model has no mfcc.conf: loaded with Kaldi's default dither")
                self.kaldi_dither = True
            return self._vosk.Model(str(view or path))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def create(self, phrases: list[str] | None = None) -> Recognizer:
        # Vosk has no biasing: a phrase list is a grammar that limits recognition to these
        # phrases (and [unk]); models without a dynamic graph ignore it.
        key = json.dumps([*phrases, "[unk]"], ensure_ascii=False) if phrases else ""
        with self._lock:
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i].key == key:
                    rec = self._idle.pop(i)
                    self.stats.reused += 1
                    self.stats.idle = len(self._idle)
                    rec.begin()
                    return rec
            if key:
                raw = self._vosk.KaldiRecognizer(self.model, self.sample_rate, key)
            else:
                raw = self._vosk.KaldiRecognizer(self.model, self.sample_rate)
            self.stats.created += 1
        raw.SetWords(True)
        rec = _VoskRecognizer(raw, self, key)
        rec.begin()
        return rec

    def _release(self, rec: _VoskRecognizer) -> None:
        with self._lock:
            if rec.fed >= self.recycle_samples or self.max_idle == 0:
                self.stats.dropped += 1
                return
            self._idle.append(rec)
            if len(self._idle) > self.max_idle:
                self._idle.pop(0)  # the least recently used goes
                self.stats.dropped += 1
            self.stats.idle = len(self._idle)

    def idle(self) -> int:
        return len(self._idle)
