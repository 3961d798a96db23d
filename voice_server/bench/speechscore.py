"""A speech quality score for ``bench network``: STOI (and wide-band PESQ where the ``pesq``
module is installed) of what a listener played against what the talker said.

The talker's fake microphone loops :func:`write_reference` (short Japanese sentences spoken by
Open JTalk's Mei voice, a pause after each); the listening page records what it played
(``voiceDiag.startRecording``). :func:`score` finds every whole occurrence of each sentence in
the recording by correlating 10 ms log-energy envelopes (the mouth-to-ear delay is unknown),
aligns it piece by piece on the waveform (NetEq stretches time while it conceals and shrinks it
to catch up; a score of misaligned audio would count that as damage, which no one hears), and
scores it against the sentence: the mean over the occurrences, with their count (one too
damaged to be found is not counted, so the count shows it). Everything is resampled to 16 kHz
first (STOI works at 10 kHz, PESQ wide-band at 16 kHz).

Needs numpy, ``pystoi`` (the ``quality`` extra) and Open JTalk (the ``tts`` extra); ``pesq`` is
optional (``pesq_wb`` null without it). Pure functions but :func:`write_reference`, which writes
the WAV.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path
from typing import Any

__all__ = ["RATE", "SENTENCES", "available", "score", "write_reference"]

RATE = 16000  # scoring rate
#: what the talker says: a shelter's radio traffic, 1.5-2.5 s each
SENTENCES = (
    "避難所の受付を開始します。",
    "給水車が北門に到着しました。",
    "三階の会議室に毛布を運んでください。",
)
GAP_SECONDS = 0.8  # the pause after each sentence (the talker's gate closes in it)
MIN_PEAK = 0.6  # envelope correlation an occurrence must reach to be found


def available() -> str | None:
    """None when a score can be computed here, else why not (one line)."""
    try:
        import numpy  # noqa: F401
        import pystoi  # noqa: F401
    except ImportError:
        return "the speech score needs pystoi: pip install 'voice-server[quality]'"
    from voice_server.tts import openjtalk

    if not openjtalk.available():
        return "the speech score needs Open JTalk: pip install 'voice-server[tts]'"
    return None


def write_reference(path: Path) -> tuple[list[Any], int]:
    """The talker's file (48 kHz, 16-bit mono): each sentence then a pause; the sentences as
    int16 arrays at their own rate, and that rate."""
    import numpy as np

    from voice_server.tts import openjtalk

    spoken = [openjtalk.synthesize(text) for text in SENTENCES]
    rate = spoken[0].rate
    pause = b"\0\0" * int(rate * GAP_SECONDS)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(s.pcm + pause for s in spoken))
    return [np.frombuffer(s.pcm, dtype="<i2") for s in spoken], rate


def _to_scoring_rate(samples: Any, rate: int) -> Any:
    import numpy as np
    from scipy.signal import resample_poly

    x = np.asarray(samples, dtype=np.float64) / 32768.0
    if rate == RATE:
        return x
    g = math.gcd(RATE, rate)
    return resample_poly(x, RATE // g, rate // g)


FRAME = 160  # 10 ms at RATE: the envelope's frame
SEGMENT = 6400  # 0.4 s: each piece of a sentence is aligned on its own (NetEq stretches)
SLACK = 1280  # 80 ms: how far a piece may sit from where the one before it puts it


def _envelope(x: Any) -> Any:
    """The log energy per 10 ms frame."""
    import numpy as np

    n = len(x) // FRAME
    frames = np.asarray(x[: n * FRAME]).reshape(n, FRAME)
    return np.log10(np.mean(frames * frames, axis=1) + 1e-7)


def _pearson_xcorr(recorded: Any, ref: Any) -> Any:
    """For each lag, the Pearson correlation of ``ref`` with the recording's window there."""
    import numpy as np
    from scipy.signal import fftconvolve

    n = len(ref)
    ref = ref - ref.mean()
    num = fftconvolve(recorded, ref[::-1], mode="valid")  # the window's mean cancels: sum(ref)=0
    s1 = np.concatenate(([0.0], np.cumsum(recorded)))
    s2 = np.concatenate(([0.0], np.cumsum(recorded * recorded)))
    win_var = (s2[n:] - s2[:-n]) - (s1[n:] - s1[:-n]) ** 2 / n
    den = np.sqrt(np.maximum(win_var, 1e-12)) * float(np.linalg.norm(ref))
    return num / np.maximum(den, 1e-12)


def _candidates(recorded: Any, ref: Any) -> list[tuple[float, int]]:
    """(envelope correlation, start sample) of each place ``ref`` may start in the recording,
    one per sentence length, found on the 10 ms log-energy envelopes (robust to loss and
    phase), with the whole sentence inside the recording."""
    import numpy as np

    env_rec, env_ref = _envelope(recorded), _envelope(ref)
    if len(env_rec) < len(env_ref) or len(env_ref) < 2:
        return []
    c = _pearson_xcorr(env_rec, env_ref)
    found: list[tuple[float, int]] = []
    while True:
        frame = int(np.argmax(c))
        if c[frame] < MIN_PEAK:
            return found
        found.append((float(c[frame]), frame * FRAME))
        c[max(0, frame - len(env_ref)) : frame + len(env_ref)] = -1.0


def _occurrences(recorded: Any, refs: list[Any]) -> list[tuple[int, int]]:
    """(sentence index, start) of every occurrence of any sentence: best matches first, none
    overlapping another (a sentence's envelope can resemble a stretch of another's)."""
    ranked = sorted(
        ((corr, i, at) for i, ref in enumerate(refs) for corr, at in _candidates(recorded, ref)),
        reverse=True,
    )
    taken: list[tuple[int, int]] = []
    out: list[tuple[int, int]] = []
    for _corr, i, at in ranked:
        end = at + len(refs[i])
        if all(end <= a or at >= b for a, b in taken):
            taken.append((at, end))
            out.append((i, at))
    return out


def _aligned(recorded: Any, ref: Any, start: int) -> Any:
    """The recording's occurrence of ``ref`` found near ``start``, piece by piece: each 0.4 s
    piece where its waveform matches best within 80 ms of where the piece before put it (NetEq
    stretches and shrinks time while it conceals or catches up)."""
    import numpy as np

    out = []
    drift = 0
    for at in range(0, len(ref), SEGMENT):
        piece = ref[at : at + SEGMENT]
        lo = max(0, start + at + drift - SLACK)
        hi = min(len(recorded), start + at + drift + SLACK + len(piece))
        window = recorded[lo:hi]
        if len(window) < len(piece):
            out.append(np.zeros(len(piece)))
            continue
        c = np.correlate(window, piece, mode="valid")
        best = lo + int(np.argmax(c))
        drift = best - (start + at)
        out.append(recorded[best : best + len(piece)])
    return np.concatenate(out)


def score(sentences: list[Any], sentence_rate: int, recorded: Any, rate: int) -> dict[str, Any]:
    """``stoi`` (mean over every occurrence found, 3 decimals), ``pesq_wb`` (likewise, or null
    without the ``pesq`` module), and ``utterances`` (how many were found and scored)."""
    import numpy as np
    from pystoi import stoi

    try:
        from pesq import pesq
    except ImportError:
        pesq = None
    rec = _to_scoring_rate(recorded, rate)
    refs = [_to_scoring_rate(sentence, sentence_rate) for sentence in sentences]
    stois: list[float] = []
    pesqs: list[float] = []
    for i, start in _occurrences(rec, refs):
        ref = refs[i]
        deg = _aligned(rec, ref, start)
        stois.append(float(stoi(ref, deg, RATE, extended=False)))
        if pesq is not None:
            try:
                pesqs.append(float(pesq(RATE, ref, deg, "wb")))
            except Exception:  # the pesq module's own "no utterance" errors
                pass
    return {
        "stoi": round(float(np.mean(stois)), 3) if stois else None,
        "pesq_wb": round(float(np.mean(pesqs)), 2) if pesqs else None,
        "utterances": len(stois),
    }
