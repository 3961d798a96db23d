"""The headset client's emergency trigger, its signaling, and the gate it forces open."""

from __future__ import annotations

import json
from array import array

from voice_client.emergency import EmergencyTrigger
from voice_client.gate import Gate
from voice_client.signaling import ClientSession, EmergencyWindow, Emit, Send, Warn
from voice_client.vad import GateMode, VadGate


def test_two_presses_within_3s_start_the_countdown_and_it_raises_once() -> None:
    t = EmergencyTrigger()
    assert t.press(0.0) is None
    assert t.press(3.5) is None  # too late: this press is the new first one
    assert t.press(5.0) == "countdown"
    assert t.tick(9.9) is None
    assert t.tick(10.0) == "raise"
    assert t.tick(11.0) is None and not t.counting


def test_one_press_during_the_countdown_cancels_it() -> None:
    t = EmergencyTrigger()
    t.press(0.0)
    assert t.press(1.0) == "countdown"
    assert t.press(2.0) == "cancelled"
    assert t.tick(10.0) is None
    assert t.press(11.0) is None  # a fresh start needs two presses again


def test_holding_a_button_2s_arms_it_and_releasing_early_does_not() -> None:
    t = EmergencyTrigger()
    t.hold(True, 0.0)
    t.hold(False, 1.5)
    assert t.tick(3.0) is None
    t.hold(True, 4.0)
    assert t.tick(5.9) is None
    assert t.tick(6.0) == "countdown"
    t.hold(False, 6.5)
    assert t.hold(True, 7.0) == "cancelled"
    assert t.tick(20.0) is None


def joined() -> ClientSession:
    s = ClientSession(token="t", channel="ops", device_id="d")
    s.start()
    you = {"id": "s1", "sub": "sato", "name": "Sato", "device_id": "d"}
    s.receive(
        json.dumps(
            {
                "type": "joined",
                "session_id": "s1",
                "you": you,
                "participants": [],
                "channel": {"name": "ops", "display_name": "ops"},
                "grace_seconds": 5,
                "token_expires_at": 2_000_000_000,
            }
        )
    )
    return s


def test_the_session_raises_and_opens_its_window_only_for_its_own_emergency() -> None:
    s = joined()
    (send,) = s.emergency("raise")
    assert isinstance(send, Send) and send.message["type"] == "emergency"
    assert send.message["action"] == "raise"
    mine = {"type": "emergency_update", "id": "a1", "state": "raised", "by": "sato"}
    out = s.receive(json.dumps({**mine, "subject": "sato", "window_s": 10}))
    assert isinstance(out[0], Emit) and out[0].event["event"] == "emergency_update"
    assert out[1] == EmergencyWindow(10.0)
    other = s.receive(json.dumps({**mine, "subject": "kato", "window_s": 10}))
    assert not any(isinstance(a, EmergencyWindow) for a in other)
    done = s.receive(
        json.dumps({**mine, "state": "resolved", "subject": "sato", "resolution": "valid"})
    )
    assert done[-1] == EmergencyWindow(0.0)
    assert isinstance(
        ClientSession(token="t", channel="c", device_id="d").emergency("raise")[0], Warn
    )


def test_a_forced_gate_sends_even_digital_silence() -> None:
    gate = Gate(VadGate(mode=GateMode.HANDSFREE))
    silence = array("h", bytes(1920)).tobytes()
    sent = [gate.process(silence) for _ in range(10)]
    assert sent[-1] is None  # handsfree: nothing is sent while nobody speaks
    gate.vad.forced = True
    assert all(gate.process(silence) is not None for _ in range(10))
    gate.vad.forced = False
    assert [gate.process(silence) for _ in range(10)][-1] is None
