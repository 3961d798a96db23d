"""One normalization rule for indexing, search and ``asr-eval`` (pure).

- Unicode NFKC (full-width ASCII and half-width kana fold to their usual forms), then casefold.
- Whitespace runs become one space; leading and trailing whitespace goes.
- Japanese: Vosk's Japanese models put a space between words (``東 門 で 水 漏れ``); Japanese is
  written without them, so for ``language="ja"`` every space is removed, and for any language a
  space between two Japanese characters (kanji, kana, the prolonged sound mark) is removed. A
  query has no language: the second rule makes ``水 漏れ`` and ``水漏れ`` the same query.
  Korean keeps its spaces (they separate eojeol).

The side index for 1–2 character queries (:func:`short_grams`) holds every distinct unigram and
bigram inside the runs of non-space characters of the normalized text, each written as the hex
of its UTF-8 bytes (:func:`gram_token`): one plain alphanumeric token per gram, so the FTS5
``unicode61`` tokenizer keeps every character (``<``, ``=``, emoji) searchable.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "gram_token",
    "gram_tokens",
    "is_japanese_char",
    "normalize",
    "short_grams",
    "split_terms",
    "strip_spaces",
]

_WS = re.compile(r"\s+")


def is_japanese_char(ch: str) -> bool:
    """Kanji, hiragana, katakana, the iteration and prolonged-sound marks."""
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # hiragana, katakana (incl. ー)
        or 0x3400 <= o <= 0x4DBF  # CJK extension A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= o <= 0x2FFFF  # extensions B..
        or ch in "々〆ヵヶ"
    )


def normalize(text: str, language: str | None = None) -> str:
    """The indexed and searched form of ``text``."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = _WS.sub(" ", t).strip()
    if language is not None and language.lower().startswith("ja"):
        return t.replace(" ", "")
    if " " not in t:
        return t
    out: list[str] = []
    n = len(t)
    for i, ch in enumerate(t):
        if (
            ch == " "
            and 0 < i < n - 1
            and is_japanese_char(t[i - 1])
            and is_japanese_char(t[i + 1])
        ):
            continue
        out.append(ch)
    return "".join(out)


def strip_spaces(text: str) -> str:
    """Every whitespace character removed (character error rates compare this form)."""
    return _WS.sub("", text)


def split_terms(query: str) -> list[str]:
    """A query's terms: its normalized form split at spaces, duplicates removed, order kept."""
    return list(dict.fromkeys(t for t in normalize(query).split(" ") if t))


def short_grams(normalized: str) -> set[str]:
    """Every distinct 1- and 2-character substring of the non-space runs of ``normalized``."""
    grams: set[str] = set()
    for run in normalized.split(" "):
        for i, ch in enumerate(run):
            grams.add(ch)
            if i + 1 < len(run):
                grams.add(run[i : i + 2])
    return grams


def gram_token(gram: str) -> str:
    """The side-index token of a 1-2 character gram (hex of its UTF-8 bytes)."""
    return gram.encode("utf-8").hex()


def gram_tokens(normalized: str) -> str:
    """The side-index document of a normalized text: its grams' tokens, sorted, space-separated
    (the same text must be given back to delete it from the contentless index)."""
    return " ".join(sorted(gram_token(g) for g in short_grams(normalized)))
