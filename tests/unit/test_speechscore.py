"""`bench network`'s speech score: every whole occurrence of each sentence found in a recording
whatever its delay, scored with STOI (and wide-band PESQ); damage lowers the score; what is not
the talker's speech is not scored."""

from __future__ import annotations

import builtins
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voice_server.bench import speechscore

pytestmark = pytest.mark.skipif(
    speechscore.available() is not None, reason=str(speechscore.available())
)


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Any], int, Any]:
    path = tmp_path_factory.mktemp("speech") / "ref.wav"
    sentences, rate = speechscore.write_reference(path)
    with wave.open(str(path)) as w:
        assert w.getframerate() == rate and w.getnchannels() == 1
        loop = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return sentences, rate, loop


def without(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Importing ``module`` fails from now on in this test, as if it were not installed."""
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == module:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)


def recording(loop: Any, delay: int) -> Any:
    """What a listener plays: a delay, the looped file twice, and half of it once more."""
    return np.concatenate([np.zeros(delay, dtype="<i2"), loop, loop, loop[: len(loop) // 2]])


def test_every_whole_occurrence_is_found_at_any_delay_and_scores_full(
    spoken: tuple[list[Any], int, Any],
) -> None:
    sentences, rate, loop = spoken
    assert len(sentences) == len(speechscore.SENTENCES) == 3
    for delay in (0, 12345):
        got = speechscore.score(sentences, rate, recording(loop, delay), rate)
        assert got["utterances"] in (7, 8)  # two whole loops and what of the third is whole
        assert got["stoi"] >= 0.99
        assert got["pesq_wb"] is not None and got["pesq_wb"] > 4.0


def test_lost_frames_lower_the_score_the_more_the_worse(
    spoken: tuple[list[Any], int, Any],
) -> None:
    sentences, rate, loop = spoken
    rng = np.random.default_rng(7)
    scores = []
    for share in (0.03, 0.15):
        damaged = recording(loop, 480).copy()
        for i in range(0, len(damaged), 960):  # 20 ms frames, zeroed as if lost
            if rng.random() < share:
                damaged[i : i + 960] = 0
        scores.append(speechscore.score(sentences, rate, damaged, rate))
    assert 0.99 > scores[0]["stoi"] > scores[1]["stoi"]
    assert scores[0]["pesq_wb"] > scores[1]["pesq_wb"]


def test_another_rate_is_resampled_and_noise_is_not_scored(
    spoken: tuple[list[Any], int, Any],
) -> None:
    sentences, rate, loop = spoken
    from scipy.signal import resample_poly

    at_16k = np.round(resample_poly(recording(loop, 999).astype(float), 1, 3)).astype("<i2")
    assert speechscore.score(sentences, rate, at_16k, 16000)["stoi"] >= 0.98
    noise = np.random.default_rng(1).normal(0, 3000, len(loop)).astype("<i2")
    assert speechscore.score(sentences, rate, noise, rate) == {
        "stoi": None, "pesq_wb": None, "utterances": 0
    }  # fmt: skip


def test_without_the_pesq_module_pesq_is_null(
    spoken: tuple[list[Any], int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sentences, rate, loop = spoken
    without(monkeypatch, "pesq")
    got = speechscore.score(sentences, rate, loop, rate)
    assert got["pesq_wb"] is None and got["stoi"] >= 0.99 and got["utterances"] == 3


def test_available_names_the_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    without(monkeypatch, "pystoi")
    assert "voice-server[quality]" in str(speechscore.available())


def test_the_reference_is_the_sentences_each_followed_by_a_pause(
    spoken: tuple[list[Any], int, Any], tmp_path: Path
) -> None:
    sentences, rate, loop = spoken
    pause = int(rate * speechscore.GAP_SECONDS)
    assert len(loop) == sum(len(s) + pause for s in sentences)
    assert not np.any(loop[len(sentences[0]) : len(sentences[0]) + pause])


def test_time_stretched_as_neteq_does_is_realigned_piece_by_piece(
    spoken: tuple[list[Any], int, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 ms repeated in the middle of every second (an expand) shifts everything after it: the
    pieces after the stretch are found where they moved to."""
    sentences, rate, loop = spoken
    rec = recording(loop, 2000)
    step, extra = rate, int(rate * 0.06)
    pieces = []
    for at in range(0, len(rec), step):
        pieces += [rec[at : at + step // 2], rec[at + step // 2 - extra : at + step // 2],
                   rec[at + step // 2 : at + step]]  # fmt: skip
    stretched = np.concatenate(pieces)
    got = speechscore.score(sentences, rate, stretched, rate)
    assert got["utterances"] in (7, 8) and got["stoi"] > 0.75, got  # one lag for all: 0.54
    monkeypatch.setattr(speechscore, "SEGMENT", 10**9)  # no piecewise alignment
    assert speechscore.score(sentences, rate, stretched, rate)["stoi"] < got["stoi"] - 0.15
