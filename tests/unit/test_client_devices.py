"""Device selection and the playout mixer of the headset client (no sound card needed)."""

from __future__ import annotations

from array import array

import pytest

from voice_client.devices import AudioDeviceError, DeviceInfo, Playout, pick
from voice_client.ptt import PttState

DEVICES = [
    DeviceInfo(0, "HDA Intel: ALC255 Analog", 2, 2, False, False),
    DeviceInfo(1, "Jabra Evolve2 65", 1, 2, True, True),
    DeviceInfo(2, "HDMI 0", 0, 8, False, False),
]


def test_devices_are_picked_by_default_index_or_name() -> None:
    assert pick("default", "input", DEVICES).index == 1
    assert pick("2", "output", DEVICES).name == "HDMI 0"
    assert pick("jabra", "output", DEVICES).index == 1


def test_no_device_is_one_clear_message() -> None:
    with pytest.raises(AudioDeviceError, match="no audio input device found"):
        pick("default", "input", [DeviceInfo(0, "HDMI", 0, 2, False, True)])
    with pytest.raises(AudioDeviceError, match="no audio output device named like 'usb'"):
        pick("usb", "output", DEVICES)
    with pytest.raises(AudioDeviceError, match="index 2"):
        pick("2", "input", DEVICES)


def pcm(value: int, samples: int) -> bytes:
    return array("h", [value] * samples).tobytes()


def test_a_slot_plays_once_its_prebuffer_is_full_and_slots_are_mixed() -> None:
    play = Playout(None, prebuffer_ms=20)
    play.push("1", pcm(1000, 480))
    assert play.render(480) == bytes(960)  # 10 ms buffered: still waiting for 20 ms
    play.push("1", pcm(1000, 480))
    play.push("2", pcm(30000, 960))
    mixed = array("h", play.render(480))
    assert set(mixed) == {31000}
    play.push("2", pcm(30000, 960))
    assert set(array("h", play.render(480))) == {31000}


def test_mixing_clips_instead_of_wrapping() -> None:
    play = Playout(None, prebuffer_ms=0)
    play.push("1", pcm(30000, 480))
    play.push("2", pcm(30000, 480))
    assert set(array("h", play.render(480))) == {32767}


def test_a_growing_buffer_is_cut_back_so_latency_cannot_creep_up() -> None:
    play = Playout(None, prebuffer_ms=20, max_ms=120)
    for _ in range(20):
        play.push("1", pcm(5, 960))  # 400 ms arrives at once
    assert play.dropped_bytes > 0
    heard = 0
    while any(play.render(480)):
        heard += 1
    assert heard <= 12  # at most 120 ms were still queued


def test_underrun_plays_silence_and_waits_for_the_prebuffer_again() -> None:
    play = Playout(None, prebuffer_ms=20)
    play.push("1", pcm(7, 960))
    assert set(array("h", play.render(480))) == {7}
    assert set(array("h", play.render(960))) == {7, 0}
    assert play.underruns == 1
    play.push("1", pcm(7, 480))
    assert play.render(480) == bytes(960)


def test_push_to_talk_sources_are_merged() -> None:
    changes: list[bool] = []
    ptt = PttState(changes.append)
    ptt.toggle("key")
    ptt.set("evdev", True)
    ptt.set("evdev", False)
    assert ptt.pressed and changes == [True]
    ptt.toggle("key")
    assert changes == [True, False]
