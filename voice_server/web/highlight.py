"""Search hits highlighted on the server (pure): the transcript is escaped, then the matches are
wrapped in ``<mark>`` — the text is never trusted as markup.

A query term matches the *normalized* text (:mod:`voice_server.calllog.normalize`: NFKC,
casefold, spaces between Japanese words removed), so the highlighter normalizes the original
text character by character, remembering where each normalized character came from, finds the
terms there and marks the original characters they span (``水漏れ`` marks ``水 漏れ``).
"""

from __future__ import annotations

import unicodedata

from markupsafe import Markup, escape

from voice_server.calllog.normalize import is_japanese_char, split_terms

__all__ = ["highlight", "spans"]


_VOICE_MARKS = frozenset("\uff9e\uff9f\u3099\u309a")


def _clusters(text: str) -> list[tuple[int, int]]:
    """Ranges of a base character with the combining marks (and half-width voice marks) after
    it: NFKC composes them together (ﾎﾟ → ポ)."""
    out: list[tuple[int, int]] = []
    for index, ch in enumerate(text):
        if out and (unicodedata.combining(ch) or ch in _VOICE_MARKS):
            out[-1] = (out[-1][0], index + 1)
        else:
            out.append((index, index + 1))
    return out


def _mapped(text: str, language: str) -> tuple[str, list[tuple[int, int]]]:
    """The normalized text and, per normalized character, the original range it came from."""
    chars: list[tuple[str, tuple[int, int]]] = []
    for a, b in _clusters(text):
        for out in unicodedata.normalize("NFKC", text[a:b]).casefold():
            if out.isspace():
                if chars and chars[-1][0] != " ":
                    chars.append((" ", (a, b)))
            else:
                chars.append((out, (a, b)))
    while chars and chars[-1][0] == " ":
        chars.pop()
    japanese = language.lower().startswith("ja")
    kept = [
        (ch, where)
        for k, (ch, where) in enumerate(chars)
        if ch != " "
        or not (
            japanese
            or (
                0 < k < len(chars) - 1
                and is_japanese_char(chars[k - 1][0])
                and is_japanese_char(chars[k + 1][0])
            )
        )
    ]
    return "".join(c for c, _ in kept), [w for _, w in kept]


def spans(text: str, query: str, language: str = "") -> list[tuple[int, int]]:
    """Merged ``[start, end)`` ranges of ``text`` that the query's terms match."""
    norm, origin = _mapped(text, language)
    marks: list[tuple[int, int]] = []
    for term in split_terms(query):
        start = norm.find(term)
        while start >= 0:
            end = start + len(term)
            marks.append((origin[start][0], origin[end - 1][1]))
            start = norm.find(term, end)
    merged: list[tuple[int, int]] = []
    for a, b in sorted(marks):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def highlight(text: str, query: str, language: str = "") -> Markup:
    """``text`` as safe HTML with each match in ``<mark>``."""
    out = Markup("")
    at = 0
    for a, b in spans(text, query, language):
        out += escape(text[at:a]) + Markup("<mark>") + escape(text[a:b]) + Markup("</mark>")
        at = b
    return out + escape(text[at:])
