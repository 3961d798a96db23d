"""The hands-free gate of the headset client (the same rule as the phone client's vad.js)."""

from __future__ import annotations

import math
from array import array

import pytest

from voice_client.gate import BLOCK_SAMPLES, Gate, OnsetDetector
from voice_client.vad import GateMode, VadGate, VadRules, rms_db

LOUD, QUIET = -20.0, -100.0


def run(gate: VadGate, levels: list[float]) -> list[bool]:
    states = []
    for level in levels:
        gate.feed(level)
        states.append(gate.open)
    return states


def test_rms_of_full_scale_square_is_zero_db_and_silence_is_minus_100() -> None:
    assert rms_db(array("h", [32767, -32767] * 240)) == pytest.approx(0.0, abs=0.01)
    assert rms_db(bytes(960)) == -100.0


def test_gate_opens_on_the_first_voiced_block_and_holds_for_the_hangover() -> None:
    gate = VadGate(VadRules(attack_ms=30, hangover_ms=500))
    states = run(gate, [QUIET] * 5 + [LOUD] * 10 + [QUIET] * 60)
    first_open = states.index(True)
    assert first_open == 5  # no attack delay: the block that opened it is sent (one block late)
    closed_at = states.index(False, first_open)
    assert closed_at - 14 == 50  # 500 ms after the last voiced block


def test_a_click_shorter_than_the_attack_closes_at_once() -> None:
    gate = VadGate(VadRules(attack_ms=30, hangover_ms=500))
    states = run(gate, [QUIET] * 5 + [LOUD] + [QUIET] * 5)
    assert states[5] is True and states[7] is False  # two quiet blocks end a tentative burst
    assert not gate.confirmed


def test_steady_noise_stops_counting_as_voice() -> None:
    gate = VadGate()
    states = run(gate, [-40.0] * 3000)  # 30 s of steady noise at -40 dBFS
    assert states[0] is True and states[-1] is False


def test_push_to_talk_ignores_voice_and_keeps_a_short_tail() -> None:
    gate = VadGate(VadRules(ptt_tail_ms=120), GateMode.PTT)
    assert run(gate, [LOUD] * 10) == [False] * 10
    gate.set_ptt(True)
    assert run(gate, [QUIET] * 3) == [True] * 3
    gate.set_ptt(False)
    states = run(gate, [LOUD] * 20)
    assert states.index(False) == 11  # closed 120 ms after the release


def test_open_mode_always_sends() -> None:
    gate = VadGate(mode=GateMode.OPEN)
    assert run(gate, [QUIET] * 5) == [True] * 5


def test_rules_are_validated() -> None:
    with pytest.raises(ValueError):
        VadRules(hangover_ms=0)
    with pytest.raises(ValueError):
        VadRules(threshold_db=10)


def tone(ms: int, amplitude: int = 8000) -> bytes:
    n = 48 * ms
    return array(
        "h", (int(amplitude * math.sin(2 * math.pi * 440 * i / 48000)) for i in range(n))
    ).tobytes()


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + 1920] for i in range(0, len(pcm), 1920)]


def test_gate_sends_the_burst_one_block_late_and_then_stops_sending() -> None:
    changes: list[bool] = []
    gate = Gate(VadGate(VadRules(hangover_ms=100)), changes.append)
    pcm = bytes(1920 * 5) + tone(200) + bytes(1920 * 20)
    out = [gate.process(f) for f in frames(pcm)]
    assert out[:4] == [None] * 4  # silence before anyone speaks: nothing is sent
    sent = b"".join(o for o in out if o is not None)
    samples = array("h", sent)
    assert max(samples) > 7000  # the tone went out
    assert changes == [True, False]
    tail = out[out.index(None, 6) - 3 :]
    assert tail[:3] == [bytes(1920)] * 3  # after the burst: 60 ms of silence, then nothing
    assert set(tail[3:]) == {None}
    # the first tone sample leaves exactly one block (10 ms) after it came in
    first_in = array("h", pcm).index(next(x for x in array("h", pcm) if x))
    flat = array("h", b"".join(o if o is not None else bytes(1920) for o in out))
    first_out = next(i for i, x in enumerate(flat) if x)
    assert first_out - first_in == BLOCK_SAMPLES


def test_onset_detector_finds_the_first_loud_sample_after_quiet() -> None:
    detector = OnsetDetector()
    quiet = array("h", bytes(2 * 48 * 400))
    assert detector.scan(quiet) == -1
    burst = array("h", tone(50))
    at = detector.scan(burst)
    assert 0 <= at < 48  # within the first millisecond of a 440 Hz tone at -12 dBFS
    assert detector.scan(array("h", tone(50))) == -1  # no new onset without 300 ms of quiet


def test_the_gate_rule_is_pure() -> None:
    import subprocess
    import sys

    code = "import sys, voice_client.vad; print(' '.join({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not set(out.stdout.split()) & {"asyncio", "aiortc", "av", "sounddevice", "websockets"}
