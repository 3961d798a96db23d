"""Hallucination guards for Whisper's output (pure: text and numbers in, a verdict out).

Whisper writes text on silence, noise and music: the prompt echoed (often in a loop), stock
phrases of its subtitle training data (「ご視聴ありがとうございました」), English on Japanese audio.
The engine suppresses them in layers: the burst boundaries (a burst is speech the talk detector
accepted), a voice-activity check before decoding, and these checks of the result. A suppressed
result becomes a gap with reason ``no_speech`` or ``prompt_echo``, never an utterance.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "NO_SPEECH",
    "PROMPT_ECHO",
    "SegmentInfo",
    "is_prompt_echo",
    "keep_segment",
    "norm",
    "trim_echo_tail",
    "verdict",
]

NO_SPEECH = "no_speech"
PROMPT_ECHO = "prompt_echo"
COMPRESSION_MAX = 2.4  # zlib ratio above which a segment is a repetition loop (Whisper's own)
LOGPROB_MIN = -1.0
# subtitle credits and sign-offs Whisper produces on silence or music (whole results only)
STOCK_PHRASES = (
    "ご視聴ありがとうございました",
    "ご視聴ありがとうございます",
    "最後までご視聴いただきありがとうございます",
    "チャンネル登録をお願いします",
    "チャンネル登録お願いします",
    "おやすみなさい",
    "thankyouforwatching",
    "thanksforwatching",
    "pleasesubscribe",
)
_DROP = re.compile(r"[\s\W_]+", re.UNICODE)
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")
_LATIN_WORDS = re.compile(r"[A-Za-z]+(?:\s+[A-Za-z]+)+")


def norm(text: str) -> str:
    """NFKC, lower case, punctuation and spaces removed (how results are compared)."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text)).lower()


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


def keep_segment(seg: SegmentInfo, language: str, no_speech_threshold: float) -> bool:
    """False for a segment that is a repetition loop, likely not speech, or (Japanese) Latin
    words only: a sentence of English that Whisper puts on Japanese audio it cannot read."""
    if not norm(seg.text):
        return False
    if seg.compression_ratio > COMPRESSION_MAX:
        return False
    if seg.no_speech_prob > no_speech_threshold and seg.avg_logprob < LOGPROB_MIN:
        return False
    if seg.no_speech_prob > max(no_speech_threshold, 0.8):  # Whisper itself says: no speech
        return False
    text = unicodedata.normalize("NFKC", seg.text)
    return not (language == "ja" and not _JAPANESE.search(text) and _LATIN_WORDS.search(text))


ECHO_DISTANCE = 0.25  # edits per character at most, for a result to count as the list read back


def substring_distance(needle: str, haystack: str) -> int:
    """The fewest edits that turn ``needle`` into some substring of ``haystack``
    (approximate substring matching: the match may start and end anywhere)."""
    previous = [0] * (len(haystack) + 1)
    for i, ch in enumerate(needle, 1):
        current = [i]
        for j, other in enumerate(haystack, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ch != other))
            )
        previous = current
    return min(previous)


def is_prompt_echo(text: str, phrases: list[str]) -> bool:
    """True when the result is the phrase list read back: it lies inside the list joined
    (normalized; up to :data:`ECHO_DISTANCE` edits per character, as Whisper may misspell what it
    echoes) and is longer than any single phrase (a talker who says just one listed phrase is
    not an echo), or it is two or more phrases in a row."""
    got = norm(text)
    if not got or not phrases:
        return False
    terms = [t for t in (norm(p) for p in phrases) if t]
    if not terms:
        return False
    joined = "".join(terms)
    if len(got) > max(len(t) for t in terms) and (
        got in joined or substring_distance(got, joined) <= ECHO_DISTANCE * len(got)
    ):
        return True
    # two or more listed phrases and nothing else
    rest, hits = got, 0
    while rest:
        match = next((t for t in sorted(terms, key=len, reverse=True) if rest.startswith(t)), None)
        if match is None:
            return False
        rest, hits = rest[len(match) :], hits + 1
    return hits >= 2


def verdict(text: str, phrases: list[str]) -> str:
    """``""`` (keep), ``no_speech`` or ``prompt_echo`` for a whole burst's text."""
    got = norm(text)
    if not got or got in STOCK_PHRASES:
        return NO_SPEECH
    if is_prompt_echo(text, phrases):
        return PROMPT_ECHO
    return ""


_SEPARATORS = " \t、。,.・!！?？"


def trim_echo_tail(text: str, phrases: list[str]) -> str:
    """``text`` without a trailing run of listed phrases read back after the speech (measured
    with phrase hints on Open JTalk speech: 「…30人来ています東小学校、東小学校、東小学校、」):
    a run of two or more listed phrases at the end, each optionally followed by punctuation, is
    cut when what precedes it is speech (a whole result that is only phrases is
    :func:`is_prompt_echo`'s). One listed phrase at the end is kept: people end sentences on a
    place name."""
    terms = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
    if not terms or not text:
        return text
    cut = len(text.rstrip(_SEPARATORS))  # the run's end (punctuation after it ignored)
    keep, count = cut, 0  # keep: where the speech before the run ends (its "。" kept)
    while cut > 0:
        match = next((t for t in terms if text[:cut].endswith(t)), None)
        if match is None:
            break
        count += 1
        keep = cut - len(match)
        cut = len(text[:keep].rstrip(_SEPARATORS))
    if count >= 2 and cut > 0:
        return text[:keep].rstrip(" \t、,")
    return text
