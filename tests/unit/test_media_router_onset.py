"""The router's burst start: a pre-roll that does not replay old silence, and the talk-onset to
first-forward histogram behind ``voice_media_talk_onset_seconds``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from voice_server.histogram import LatencyHistogram, make_bounds_us
from voice_server.media.counters import MediaCounters
from voice_server.media.router import Router
from voice_server.media.rtp import build_rtp
from voice_server.talk.detector import TalkRules


class _Tx:
    def protect(self, data: bytes) -> bytes:
        return data


@dataclass
class _Transport:
    session_id: str
    media_ready: bool = True
    remote: tuple[str, int] = ("127.0.0.1", 9)
    tx: _Tx = field(default_factory=_Tx)
    level_ext_id: int = 1


class _Events:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, int]] = []

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("start", session_id, slot))

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("stop", session_id, slot))

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self.log.append(("busy", session_id, slots))


def _router() -> tuple[Router, list[bytes], LatencyHistogram, _Events]:
    sent: list[bytes] = []
    onsets = LatencyHistogram(make_bounds_us(max_us=2_000_000))
    events = _Events()
    router = Router(
        "ops",
        slot_ssrcs=(1111, 2222),
        payload_type=111,
        rules=TalkRules(),
        preroll_packets=5,
        events=events,
        sendto=lambda data, addr: sent.append(data),
        counters=MediaCounters(),
        histogram=LatencyHistogram(),
        onset_histogram=onsets,
    )
    return router, sent, onsets, events


def _packet(seq: int, level: int) -> bytes:
    return build_rtp(
        payload_type=111,
        seq=seq,
        timestamp=seq * 960,
        ssrc=42,
        payload=b"x",
        audio_level=(True, level),
    )


def _feed(router: Router, talker: Any, seq: int, level: int, at_ms: int) -> None:
    router.on_rtp(talker, _packet(seq, level), at_ms * 1_000_000)


def test_pre_roll_skips_silence_sent_long_before_the_burst() -> None:
    router, sent, _, events = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    # DTX: one silent packet every 400 ms, then speech every 20 ms
    for i, t in enumerate((0, 400, 800)):
        _feed(router, talker, 100 + i, 127, 10_000 + t)
    seq = 103
    for k in range(4):
        _feed(router, talker, seq + k, 20, 11_000 + 20 * k)
    assert events.log == [("start", "talker", 1)]
    # the voiced run that started it (3 packets: the 40 ms attack) then the live packet; the
    # two DTX packets still in the pre-roll ring (400 and 800 ms) are not replayed
    assert len(sent) == 4


def test_pre_roll_keeps_a_soft_start_just_before_the_voiced_run() -> None:
    router, sent, _, _ = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    _feed(router, talker, 1, 70, 5_000)  # quiet consonant, 40 ms before the voiced run
    _feed(router, talker, 2, 70, 5_020)
    for k in range(3):
        _feed(router, talker, 3 + k, 20, 5_040 + 20 * k)
    assert len(sent) == 5


def test_talk_onset_to_first_forward_is_measured_once_per_burst() -> None:
    router, _, onsets, _ = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    for k in range(5):
        _feed(router, talker, k, 20, 1_000 + 20 * k)
    assert onsets.count == 1


def test_the_first_voiced_packet_is_forwarded_at_once_and_talk_starts_after_the_attack() -> None:
    router, sent, onsets, events = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    now = time.perf_counter_ns() // 1_000_000  # the histogram compares with the real clock
    _feed(router, talker, 1, 20, now)
    assert len(sent) == 1 and events.log == []  # heard at once, not announced yet
    assert onsets.count == 1 and onsets.max_us < 5_000
    _feed(router, talker, 2, 20, now + 20)
    _feed(router, talker, 3, 20, now + 40)
    assert events.log == [("start", "talker", 1)] and len(sent) == 3


def test_a_click_shorter_than_the_attack_gives_its_slot_back_silently() -> None:
    router, sent, _, events = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    _feed(router, talker, 1, 20, 3_000)
    for k in range(2, 5):
        _feed(router, talker, k, 127, 3_000 + 20 * (k - 1))
    assert events.log == [] and talker.slot is None and router.active_talkers == 0
    assert 1 <= len(sent) <= 2


def test_packets_stopping_during_the_attack_free_the_slot_at_the_next_tick() -> None:
    router, _, _, events = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    _feed(router, talker, 1, 20, 4_000)
    assert talker.slot == 1
    router.tick(4_100 * 1_000_000)
    assert talker.slot is None and events.log == []
    router.remove("talker")
    assert events.log == []  # no talk_stopped for a burst that never started


def test_when_talk_starts_the_pre_roll_still_holds_the_bursts_first_packets() -> None:
    """The transcription tap opens a burst at talk_started with the pre-roll's packets: with
    speculative forwarding they must still be there at that moment (then cleared)."""
    router, _, _, events = _router()
    talker = router.add(_Transport("talker"))  # type: ignore[arg-type]
    router.add(_Transport("listener"))  # type: ignore[arg-type]
    router.refresh_listeners()
    seen: list[int] = []
    original = events.talk_started

    def talk_started(session_id: str, channel: str, slot: int) -> None:
        seen.append(len(talker.preroll))
        original(session_id, channel, slot)

    events.talk_started = talk_started  # type: ignore[method-assign]
    for k in range(3):
        _feed(router, talker, k, 20, 6_000 + 20 * k)
    assert seen == [3] and len(talker.preroll) == 0
