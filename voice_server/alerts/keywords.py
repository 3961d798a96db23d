"""Keyword lists and the matcher [pure].

A keyword is kept as typed and matched in the call log's normalised form
(:func:`voice_server.calllog.normalize.normalize`, as a search query is: NFKC, casefold, spaces
between Japanese characters removed; hiragana and katakana stay different, as in search). A list
is checked whole before anything is stored: no empty entry, none shorter than
:data:`MIN_CHARS` or longer than :data:`MAX_CHARS` once normalised, no two entries that
normalise alike, at most :data:`MAX_KEYWORDS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voice_server.alerts.model import AlertError
from voice_server.calllog.normalize import normalize

__all__ = ["MAX_CHARS", "MAX_KEYWORDS", "MIN_CHARS", "Keyword", "matches", "parse_list"]

MIN_CHARS = 2
MAX_CHARS = 50
MAX_KEYWORDS = 200


@dataclass(frozen=True, slots=True)
class Keyword:
    text: str  # as the admin typed it
    norm: str  # what is matched


def parse_list(items: object) -> list[Keyword]:
    """A list of keywords from JSON or a form (one per line); AlertError naming the first bad
    entry (by position, 1-based) when any is refused."""
    if isinstance(items, str):
        items = items.splitlines()
    if not isinstance(items, list):
        raise AlertError("bad_keywords", "keywords must be a list of text")
    if len(items) > MAX_KEYWORDS:
        raise AlertError("too_many_keywords", f"at most {MAX_KEYWORDS} keywords")
    out: list[Keyword] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items, 1):
        if not isinstance(item, str):
            raise AlertError("bad_keywords", f"keyword {index} is not text")
        text = item.strip()
        if any(ord(c) < 32 for c in text):
            raise AlertError("bad_keywords", f"keyword {index} contains control characters")
        norm = normalize(text)
        if not norm:
            raise AlertError("keyword_empty", f"keyword {index} is empty")
        if len(norm) < MIN_CHARS:
            raise AlertError("keyword_short", f"keyword {index} is shorter than {MIN_CHARS}")
        if len(norm) > MAX_CHARS:
            raise AlertError("keyword_long", f"keyword {index} is longer than {MAX_CHARS}")
        if norm in seen:
            raise AlertError("keyword_duplicate", f"keyword {index} repeats keyword {seen[norm]}")
        seen[norm] = index
        out.append(Keyword(text, norm))
    return out


def matches(norm_text: str, keywords: Iterable[Keyword], language: str = "") -> list[Keyword]:
    """The keywords found in an utterance's normalised text, each once, in list order. A
    Japanese utterance is normalised without any space (``normalize``), so a keyword's spaces
    do not count there either."""
    spaceless = language.lower().startswith("ja")
    found: dict[str, Keyword] = {}
    for k in keywords:
        needle = k.norm.replace(" ", "") if spaceless else k.norm
        if needle and needle in norm_text and k.norm not in found:
            found[k.norm] = k
    return list(found.values())
