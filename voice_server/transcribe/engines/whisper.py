"""The Whisper engine: faster-whisper (CTranslate2) behind the recognizer seam.

Imported only when ``--engine whisper`` is chosen (the pip extra ``[whisper]``); nothing here is
imported when the server starts or a CLI parser is built.

Whisper is not a streaming recognizer: a recognizer here collects the burst's PCM (16 kHz mono,
fed by the pipeline exactly as for Vosk) and decodes it once, when the burst ends. So there are
no partial results (``partials = False``; the live view says so), and the burst's text is a
function of its audio alone:

- **deterministic decoding** — ``temperature=0`` only (no fallback to sampling), a fixed beam,
  ``condition_on_previous_text=False``, one model with a fixed number of CPU threads, and the
  sequential pipeline (faster-whisper's batched pipeline chunks by VAD, which changes the text);
- **bursts longer than the 30 s window** (a 45 s hands-free burst) are decoded window after
  window by the sequential pipeline, which seeks to the end of the last complete segment, so
  the burst becomes one utterance; consecutive repeated segments are collapsed;
- **phrases** (deployment list ∪ channel list) go in as ``hotwords``, which faster-whisper puts
  before *every* window (``initial_prompt`` would only reach the first);
- **guards** (:mod:`voice_server.transcribe.engines.guards`): a voice-activity check (Silero VAD,
  shipped inside faster-whisper) before decoding, so silence, noise and music cost ~10 ms and
  never reach the model; segments that are repetition loops, marked no-speech, or English on
  Japanese audio are dropped; a result that is empty, a stock subtitle phrase or the phrase list
  read back is suppressed: :class:`RecResult` with ``gap`` = ``no_speech`` / ``prompt_echo``.

Device: ``cuda`` (float16) when CTranslate2 sees a GPU, else ``cpu`` (int8).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from voice_server.calllog.model import Word
from voice_server.transcribe.engines.guards import (
    NO_SPEECH,
    SegmentInfo,
    is_prompt_echo,
    keep_segment,
    norm,
    trim_echo_tail,
    verdict,
)
from voice_server.transcribe.recognizer import Recognizer, RecResult

__all__ = ["BEAM_SIZE", "WhisperFactory"]

log = logging.getLogger(__name__)
BEAM_SIZE = 5
NO_SPEECH_THRESHOLD = 0.6
MAX_BURST_SECONDS = 600  # audio kept per burst at most (a stuck transmitter)
NO_SPACE_LANGUAGES = {"ja", "zh", "yue", "th", "lo", "my"}


def cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


class _WhisperRecognizer:
    def __init__(self, owner: WhisperFactory, phrases: list[str] | None) -> None:
        self._owner = owner
        self._phrases = phrases or []
        self._pcm = bytearray()
        self._limit = MAX_BURST_SECONDS * owner.sample_rate * 2

    def accept(self, pcm: bytes) -> None:
        room = self._limit - len(self._pcm)
        if room > 0:
            self._pcm += pcm[:room]

    def partial(self) -> str:
        return ""  # Whisper decodes a burst once it has ended

    def final(self) -> RecResult:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        return self._owner.transcribe(pcm, self._phrases)

    def close(self) -> None:
        self._pcm = bytearray()


class WhisperFactory:
    """One loaded faster-whisper model; ``create`` is thread-safe, decoding may run from
    several worker threads (CTranslate2 queues them)."""

    engine = "whisper"
    partials = False
    uses_deployment_phrases = True
    sample_rate = 16000

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        language: str,
        device: str = "auto",
        cpu_threads: int = 0,
        beam_size: int = BEAM_SIZE,
        no_speech_threshold: float = NO_SPEECH_THRESHOLD,
        vad_check: bool = True,
    ) -> None:
        from faster_whisper import WhisperModel

        if device == "auto":
            device = "cuda" if cuda_devices() > 0 else "cpu"
        self.device = device
        self.compute_type = "float16" if device == "cuda" else "int8"
        self.cpu_threads = cpu_threads or os.cpu_count() or 1
        self.path = path
        self.name = name
        self.language = language
        self.beam_size = beam_size
        self.no_speech_threshold = no_speech_threshold
        self.vad_check = vad_check
        self.decoded = 0
        self.suppressed: dict[str, int] = {}
        self._lock = threading.Lock()
        self.model = WhisperModel(
            str(path),
            device=device,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=1,
            local_files_only=True,  # never a download: the folder was checked before
        )

    def create(self, phrases: list[str] | None = None) -> Recognizer:
        return _WhisperRecognizer(self, phrases)

    # ------------------------------------------------------------------ decoding
    def _has_speech(self, audio: Any) -> bool:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        return bool(get_speech_timestamps(audio, VadOptions()))

    def _gap(self, reason: str) -> RecResult:
        with self._lock:
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
        return RecResult("", (), gap=reason)

    def transcribe(self, pcm: bytes, phrases: list[str]) -> RecResult:
        import numpy as np

        audio = np.frombuffer(pcm[: len(pcm) & ~1], dtype=np.int16).astype(np.float32) / 32768.0
        if audio.size < self.sample_rate // 10:
            return self._gap(NO_SPEECH)
        if self.vad_check and not self._has_speech(audio):
            return self._gap(NO_SPEECH)
        hotwords = "、".join(p.strip() for p in phrases if p.strip()) or None
        segments, _info = self.model.transcribe(
            audio,
            language=self.language,
            task="transcribe",
            beam_size=self.beam_size,
            best_of=1,
            patience=1.0,
            temperature=[0.0],
            condition_on_previous_text=False,
            no_speech_threshold=self.no_speech_threshold,
            word_timestamps=True,
            vad_filter=False,
            hotwords=hotwords,
        )
        kept = [
            s
            for s in segments
            if keep_segment(
                SegmentInfo(s.text, s.no_speech_prob, s.avg_logprob, s.compression_ratio),
                self.language,
                self.no_speech_threshold,
            )
        ]
        with self._lock:
            self.decoded += 1
        unique: list[Any] = []  # consecutive repeated segments once (a loop across windows)
        for s in kept:
            if not unique or norm(unique[-1].text) != norm(s.text):
                unique.append(s)
        if len(unique) > 1 and phrases:  # a segment that only reads the hints back goes
            unique = [s for s in unique if not is_prompt_echo(s.text, phrases)] or unique
        texts = [s.text.strip() for s in unique]
        sep = "" if self.language in NO_SPACE_LANGUAGES else " "
        text = sep.join(texts).strip()
        reason = verdict(text, phrases)
        if reason:
            return self._gap(reason)
        trimmed = trim_echo_tail(text, phrases)
        if trimmed != text:
            with self._lock:
                self.suppressed["echo_tail"] = self.suppressed.get("echo_tail", 0) + 1
        words: list[Word] = []
        for s in unique:
            for w in s.words or ():
                words.append(
                    Word(
                        w.word.strip(),
                        max(0.0, round(float(w.start), 3)),
                        max(0.0, round(float(w.end), 3)),
                        round(float(w.probability), 3),
                    )
                )
        if trimmed != text:  # the words of the cut tail go too
            keep, seen = len(norm(trimmed)), ""
            kept_words: list[Word] = []
            for w in words:
                seen += norm(w.word)
                if len(seen) > keep:
                    break
                kept_words.append(w)
            return RecResult(trimmed, tuple(kept_words))
        return RecResult(text, tuple(words))
