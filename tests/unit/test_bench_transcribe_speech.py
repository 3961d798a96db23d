"""Speech of the capacity phase of ``bench transcribe``: distinct sentences, Opus packets of the
right length (no espeak-ng needed)."""

from __future__ import annotations

from pathlib import Path

from voice_server.bench.transcribe_speech import Recordings, korean_sentences, opus_packets
from voice_server.transcribe.packets import opus_samples


def test_sentences_are_distinct_seeded_and_use_the_right_particles() -> None:
    a = korean_sentences(300, 1)
    assert len(set(a)) == 300 and a == korean_sentences(300, 1) and a != korean_sentences(300, 2)
    assert not any("앞는" in s or "물가 " in s or "약가 " in s for s in a)


def test_opus_packets_cover_the_pcm_in_20_ms_frames() -> None:
    pcm = bytes(2 * 48000)  # one second of silence
    packets = opus_packets(pcm)
    assert 50 <= len(packets) <= 51
    assert {opus_samples(p) for p in packets} == {960}


def test_recordings_are_cycled_into_bursts_of_fixed_length(tmp_path: Path) -> None:
    import wave

    for name in ("a.wav", "b.wav"):
        with wave.open(str(tmp_path / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(bytes(2 * 16000))
    rec = Recordings(tmp_path, 3.0)
    assert "2 files" in rec.description
    burst = rec.burst()
    assert 150 <= len(burst) <= 151 and rec._next >= 2
