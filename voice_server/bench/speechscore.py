"""A speech quality score for ``bench network``: STOI (and wide-band PESQ where the ``pesq``
module is installed) of what a listener played against what the talker said.

The talker's fake microphone loops :func:`write_reference` (short Japanese sentences spoken by
Open JTalk's Mei voice, a pause after each); the listening page records what it played
(``voiceDiag.startRecording``). :func:`score` finds every whole occurrence of each sentence in
the recording by normalised cross-correlation (the mouth-to-ear delay is unknown and NetEq may
stretch), cuts it at the best lag and scores it against the sentence: the mean over the
occurrences, with their count (an occurrence too damaged to be found is not counted, so the
count shows it). Everything is resampled to 16 kHz first (STOI works at 10 kHz, PESQ wide-band
at 16 kHz).

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
MIN_PEAK = 0.5  # normalised correlation an occurrence must reach to be found


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


def _normalised_xcorr(recorded: Any, ref: Any) -> Any:
    """For each lag, the correlation of ``ref`` with the recording's window at that lag over
    both norms (1.0: the same waveform)."""
    import numpy as np
    from scipy.signal import fftconvolve

    n = len(ref)
    num = fftconvolve(recorded, ref[::-1], mode="valid")
    energy = np.concatenate(([0.0], np.cumsum(recorded * recorded)))
    window = energy[n:] - energy[:-n]
    den = np.sqrt(np.maximum(window, 1e-12)) * float(np.linalg.norm(ref))
    return num / np.maximum(den, 1e-12)


def _occurrences(recorded: Any, ref: Any) -> list[int]:
    """The lags of every whole occurrence of ``ref`` in the recording, best first."""
    import numpy as np

    if len(recorded) < len(ref) or not np.any(ref):
        return []
    c = _normalised_xcorr(recorded, ref)
    found: list[int] = []
    c = c.copy()
    while True:
        lag = int(np.argmax(c))
        if c[lag] < MIN_PEAK:
            return found
        found.append(lag)
        c[max(0, lag - len(ref)) : lag + len(ref)] = -1.0  # one occurrence per sentence length


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
    stois: list[float] = []
    pesqs: list[float] = []
    for sentence in sentences:
        ref = _to_scoring_rate(sentence, sentence_rate)
        for lag in _occurrences(rec, ref):
            deg = rec[lag : lag + len(ref)]
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
