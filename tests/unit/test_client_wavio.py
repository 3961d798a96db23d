"""WAV conversion to the client's 48 kHz mono 16-bit format, and the recording mix."""

from __future__ import annotations

import itertools
import math
import struct
import wave
from array import array
from pathlib import Path

import pytest

from voice_client.wavio import (
    FRAME_BYTES,
    Mix,
    WavError,
    frames_20ms,
    read_pcm48,
    write_wav,
)


def write_tone(
    path: Path, rate: int, channels: int, seconds: float, freq: float = 440.0, amp: int = 10000
) -> None:
    n = int(rate * seconds)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = bytearray()
        for i in range(n):
            v = int(amp * math.sin(2 * math.pi * freq * i / rate))
            frames += struct.pack("<" + "h" * channels, *([v] * channels))
        w.writeframes(bytes(frames))


def zero_crossings(samples: array[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))


def test_16khz_stereo_wav_becomes_48khz_mono_frames(tmp_path: Path) -> None:
    src = tmp_path / "tone16k.wav"
    write_tone(src, rate=16000, channels=2, seconds=1.0, freq=440)
    pcm = read_pcm48(src)
    samples = array("h", pcm)
    assert abs(len(samples) - 48000) <= 64  # one second at 48 kHz (resampler edge)
    frames = list(frames_20ms(pcm))
    assert len(frames) == 50 or len(frames) == 51
    assert all(len(f) == FRAME_BYTES for f in frames)
    # still a 440 Hz tone of the same loudness: 880 zero crossings a second
    middle = samples[4800:43200]  # 0.8 s away from the edges
    assert abs(zero_crossings(middle) - 0.8 * 880) <= 4
    peak = max(abs(s) for s in middle)
    assert 9000 <= peak <= 10500


def test_48khz_mono_wav_passes_through_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "tone48k.wav"
    write_tone(src, rate=48000, channels=1, seconds=0.1)
    with wave.open(str(src)) as w:
        original = w.readframes(w.getnframes())
    assert read_pcm48(src) == original


def test_missing_audio_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="not found") as info:
        read_pcm48(tmp_path / "nope.wav")
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_audio_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not a wav file at all" * 10)
    with pytest.raises(WavError) as info:
        read_pcm48(bad)
    assert "\n" not in str(info.value)


def test_last_frame_is_padded_with_silence() -> None:
    frames = list(frames_20ms(b"\x01\x00" * 1000))
    assert [len(f) for f in frames] == [FRAME_BYTES, FRAME_BYTES]
    assert frames[1][80:] == bytes(FRAME_BYTES - 80)
    assert list(frames_20ms(b"")) == []


def test_written_wav_is_48khz_mono_16bit(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    pcm = array("h", [0, 1000, -1000, 32767]).tobytes()
    write_wav(out, pcm)
    with wave.open(str(out)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 48000)
        assert w.readframes(4) == pcm


def test_writing_into_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WavError, match="cannot write"):
        write_wav(tmp_path / "no" / "out.wav", b"\x00\x00")


def test_mix_places_chunks_at_their_sample_positions() -> None:
    mix = Mix()
    mix.add(10, array("h", [100, 200]).tobytes())
    mix.add(0, array("h", [7]).tobytes())
    assert len(mix) == 12
    out = array("h", mix.render())
    assert out.tolist() == [7] + [0] * 9 + [100, 200]


def test_mix_sums_overlaps_and_clips() -> None:
    mix = Mix()
    mix.add(0, array("h", [1000, 30000, -30000, 5]).tobytes())
    mix.add(1, array("h", [10000, -10000, -10000]).tobytes())
    assert array("h", mix.render()).tolist() == [1000, 32767, -32768, -9995]


def test_mix_drops_samples_before_the_start() -> None:
    mix = Mix()
    mix.add(-2, array("h", [1, 2, 3]).tobytes())
    assert array("h", mix.render()).tolist() == [3]
    assert Mix().render() == b""
