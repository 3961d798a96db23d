"""The Whisper engine with the real Whisper base model on Open JTalk speech: a burst's text is a
function of its audio (the pipeline's live path equals a direct decoding of the same packets,
and again, in any order); silence, noise and music are gaps (``no_speech``), the phrase list read
back is a gap (``prompt_echo``), never utterances; a 45 s burst is one utterance with no repeated
text; the phrase list reaches the engine."""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.japanese import opus_packets, speech_pcm, whisper_factory
from tests.transcribe_helpers import rtp
from voice_server.bench.japanese import phrase_list, sentences
from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import new_burst_id
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.store.database import Database
from voice_server.transcribe.direct import recognize_packets
from voice_server.transcribe.engine import Engine
from voice_server.transcribe.errorrate import char_score

pytestmark = pytest.mark.integration
START = 1_780_000_000_000


@pytest.fixture(scope="module")
def factory() -> Any:
    return whisper_factory()


def run_burst(
    tmp_path: Path, factory: Any, packets: list[bytes], phrases: list[str] | None = None
) -> tuple[SqliteCallLog, str]:
    log = SqliteCallLog(Database(tmp_path / "voice.db"))
    eng = Engine(factory, log, workers=2, phrases_of=lambda ch: phrases)
    meta = BurstMeta(new_burst_id(START), "ops", "sato", "佐藤", "s1", START)
    job = eng.job(meta, live=True)
    assert job is not None
    for i, p in enumerate(packets):
        eng.push_rtp(job, rtp(i, p))
    eng.end(job, START + len(packets) * 20)
    assert job.finished.wait(120)
    eng.close()
    return log, meta.id


def gap_reason(log: SqliteCallLog, burst_id: str) -> str | None:
    gaps = [g for g in log.gaps(channels=None, since_ms=None, until_ms=None) if g.id == burst_id]
    return gaps[0].reason if gaps else None


def test_pipeline_text_equals_direct_decoding_and_does_not_depend_on_order(
    tmp_path: Path, factory: Any
) -> None:
    first, second = sentences(2)
    packets = [opus_packets(speech_pcm([s.text])) for s in (first, second)]
    direct = [recognize_packets(factory, p) for p in packets]
    assert char_score(first.text, direct[0].text).cer < 0.5, direct[0].text
    log, burst = run_burst(tmp_path, factory, packets[0])
    u = log.get(burst)
    assert u is not None and u.text == direct[0].text and u.language == "ja"
    assert u.words and u.words[0].start < 1.0 and u.words[-1].end <= 5.0
    # after another burst, the same audio gives the same text
    assert recognize_packets(factory, packets[1]) == direct[1]
    assert recognize_packets(factory, packets[0]) == direct[0]


def pcm_bytes(samples: list[float]) -> bytes:
    return struct.pack(f"<{len(samples)}h", *(max(-32768, min(32767, int(s))) for s in samples))


def test_silence_noise_and_music_are_no_speech_gaps_not_utterances(
    tmp_path: Path, factory: Any
) -> None:
    rng = random.Random(7)
    n = 48000 * 3
    chord = (261.6, 329.6, 392.0, 523.3)
    cases = {
        "silence": pcm_bytes([0.0] * n),
        "noise": pcm_bytes([rng.gauss(0, 1500) for _ in range(n)]),
        "music": pcm_bytes(
            [
                sum(2500 * math.sin(2 * math.pi * f * i / 48000) for f in chord)
                * (1 if (i // 6000) % 2 else 0.4)
                for i in range(n)
            ]
        ),
    }
    for name, pcm in cases.items():
        log, burst = run_burst(tmp_path / name, factory, opus_packets(pcm), ["避難所A", "給水車"])
        assert log.get(burst) is None, name
        assert gap_reason(log, burst) == "no_speech", name


def test_the_phrase_list_read_back_is_a_prompt_echo_gap(tmp_path: Path, factory: Any) -> None:
    phrases = ["避難所A", "給水車", "救急車", "中央公民館"]
    packets = opus_packets(speech_pcm(["避難所A、給水車、救急車、中央公民館"]))
    log, burst = run_burst(tmp_path, factory, packets, phrases)
    assert log.get(burst) is None
    assert gap_reason(log, burst) == "prompt_echo"
    assert factory.suppressed.get("prompt_echo", 0) >= 1


def test_a_45_second_burst_is_one_utterance_without_repeated_text(
    tmp_path: Path, factory: Any
) -> None:
    material = sentences(12)
    pcm = speech_pcm([s.text for s in material], gap_seconds=0.9)
    assert len(pcm) / 2 / 48000 > 45
    log, burst = run_burst(tmp_path, factory, opus_packets(pcm))
    u = log.get(burst)
    assert u is not None
    reference = "".join(s.text for s in material)
    text = "".join(ch for ch in u.text if ch.isalnum())
    grams = [text[i : i + 8] for i in range(len(text) - 7)]
    repeated = {g for g in grams if grams.count(g) > 1 and reference.count(g) < 2}
    assert not repeated, (repeated, u.text)
    assert char_score(reference, u.text).cer < 0.5, u.text
    assert u.words and u.words[-1].end > 40  # word times over the whole burst


def test_the_phrase_list_reaches_the_engine(tmp_path: Path, factory: Any) -> None:
    material = sentences(30)
    terms = phrase_list(material)
    s = next(x for x in material if x.text.startswith("避難所B"))
    packets = opus_packets(speech_pcm([s.text]))
    calls: list[Any] = []
    real = factory.transcribe

    def spy(pcm: bytes, phrases: list[str]) -> Any:
        calls.append(phrases)
        return real(pcm, phrases)

    factory.transcribe = spy
    try:
        log, burst = run_burst(tmp_path, factory, packets, terms)
    finally:
        del factory.transcribe
    assert calls == [terms]
    u = log.get(burst)
    assert u is not None and "避難所B" in u.text, u.text
