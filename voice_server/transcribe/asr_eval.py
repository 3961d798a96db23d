"""``voice-server asr-eval [--engine whisper] [--model PATH] --refs FILE.tsv [--phrases F]``:
accuracy on your own recordings.

The TSV has one line per recording: ``audio path <TAB> reference text`` (paths relative to the
TSV's directory; lines starting with ``#`` and empty lines are skipped). Each file is decoded the
way the pipeline decodes (:mod:`voice_server.transcribe.direct`), with the phrase list as a
channel's would be given to the engine, and scored: CER on characters after NFKC with
punctuation and spaces removed (:func:`~voice_server.transcribe.errorrate.char_score`), WER on
the call log's normalization; per file and overall. A result the engine suppressed (Whisper's
hallucination guards) counts as empty text and is marked ``suppressed``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO

from voice_server.transcribe.direct import recognize_file
from voice_server.transcribe.errorrate import Score, char_score, score
from voice_server.transcribe.recognizer import RecognizerFactory

__all__ = ["EvalError", "read_refs", "run_eval"]


class EvalError(Exception):
    """One line for the user (exit 2)."""


def read_refs(path: Path) -> list[tuple[Path, str]]:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror}") from None
    refs: list[tuple[Path, str]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        audio, sep, text = line.partition("\t")
        if not sep:
            raise EvalError(f"{path}:{number}: expected 'audio path<TAB>reference text'")
        audio_path = Path(audio.strip())
        if not audio_path.is_absolute():
            audio_path = path.parent / audio_path
        if not audio_path.is_file():
            raise EvalError(f"{path}:{number}: no such audio file {audio_path}")
        refs.append((audio_path, text.strip()))
    if not refs:
        raise EvalError(f"{path}: no recordings listed")
    return refs


def run_eval(
    factory: RecognizerFactory,
    refs_path: Path,
    out: TextIO,
    *,
    as_json: bool = False,
    phrases: list[str] | None = None,
) -> dict[str, Any]:
    total = Score(0, 0, 0, 0)
    files: list[dict[str, Any]] = []
    for audio, reference in read_refs(refs_path):
        result = recognize_file(factory, audio, phrases)
        hypothesis = result.text
        s = score(reference, hypothesis, factory.language)
        chars = char_score(reference, hypothesis)  # punctuation does not count
        s = Score(chars.char_errors, chars.chars, s.word_errors, s.words)
        total = total + s
        files.append(
            {
                "file": str(audio),
                "reference": reference,
                "hypothesis": hypothesis,
                "cer": round(s.cer, 4),
                "wer": round(s.wer, 4),
                "suppressed": result.gap or None,
            }
        )
        if not as_json:
            print(f"{audio.name}\tCER {s.cer:.3f}\tWER {s.wer:.3f}\t{hypothesis}", file=out)
    report = {
        "model": factory.name,
        "language": factory.language,
        "phrases": len(phrases or []),
        "files": files,
        "overall": {"cer": round(total.cer, 4), "wer": round(total.wer, 4), "n": len(files)},
    }
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2), file=out)
    else:
        print(
            f"overall ({len(files)} files, model {factory.name}, language {factory.language}): "
            f"CER {total.cer:.3f}  WER {total.wer:.3f}",
            file=out,
        )
    return report
