"""Character and word error rates after the call log's normalization (pure).

CER compares the normalized texts with every space removed (Japanese and Korean are compared
character by character); WER compares their space-separated words (meaningless for Japanese,
whose normalized form has no spaces: use CER there).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from voice_server.calllog.normalize import normalize, strip_spaces

__all__ = ["Score", "char_score", "edit_distance", "score"]


def edit_distance(a: Sequence[object], b: Sequence[object]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@dataclass(frozen=True, slots=True)
class Score:
    char_errors: int
    chars: int
    word_errors: int
    words: int

    @property
    def cer(self) -> float:
        return self.char_errors / self.chars if self.chars else float(self.char_errors > 0)

    @property
    def wer(self) -> float:
        return self.word_errors / self.words if self.words else float(self.word_errors > 0)

    def __add__(self, other: Score) -> Score:
        return Score(
            self.char_errors + other.char_errors,
            self.chars + other.chars,
            self.word_errors + other.word_errors,
            self.words + other.words,
        )


def score(reference: str, hypothesis: str, language: str | None = None) -> Score:
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    rc, hc = strip_spaces(ref), strip_spaces(hyp)
    rw, hw = ref.split(), hyp.split()
    return Score(edit_distance(rc, hc), len(rc), edit_distance(rw, hw), len(rw))


_NOT_TEXT = re.compile(r"[\s\W_]+", re.UNICODE)


def char_score(reference: str, hypothesis: str) -> Score:
    """CER as the Japanese figures use it: NFKC, case folded, punctuation and spaces removed,
    character by character (words are not counted)."""
    ref = _NOT_TEXT.sub("", unicodedata.normalize("NFKC", reference)).casefold()
    hyp = _NOT_TEXT.sub("", unicodedata.normalize("NFKC", hypothesis)).casefold()
    return Score(edit_distance(ref, hyp), len(ref), 0, 0)
