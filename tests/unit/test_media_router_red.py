"""Audio RED through the router: RED as sent to listeners that negotiated it, the primary frame
to the others, plain Opus (gaps filled from the redundancy) to the call log, malformed RED
dropped and counted."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.unit.test_media_router import LOUD, Events, FakeTx
from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.red import RED_PT, build_payload
from voice_server.media.router import Router
from voice_server.media.rtp import build_rtp, payload_of, read_header
from voice_server.talk.detector import TalkRules


@dataclass
class Peer:
    session_id: str
    remote: tuple[str, int]
    red: bool = False
    media_ready: bool = True
    level_ext_id: int = 1
    tx: FakeTx = field(default_factory=FakeTx)


@dataclass
class Tap:
    packets: list[bytes] = field(default_factory=list)

    def open(self, session_id: str, channel: str, preroll: list[tuple[bytes, int]],
             now_ms: int) -> str:  # fmt: skip
        self.packets += [p for p, _ in preroll]
        return session_id

    def packet(self, handle: str, plain: bytes) -> None:
        self.packets.append(plain)

    def close(self, handle: str) -> None:
        pass


def frame(seq: int) -> bytes:
    return b"frame%05d" % seq


def red(seq: int, *, payload: bytes | None = None, pt: int = RED_PT) -> bytes:
    if payload is None:
        payload = build_payload(frame(seq), [(960, frame(seq - 1))])
    return build_rtp(payload_type=pt, seq=seq, timestamp=seq * 960, ssrc=9, payload=payload,
                     audio_level=(True, LOUD))  # fmt: skip


class RedWorld:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.counters = MediaCounters()
        self.tap = Tap()
        self.router = Router(
            "ops", slot_ssrcs=(1000, 1001), payload_type=111,
            rules=TalkRules(attack_ms=40, hangover_ms=600), preroll_packets=5,
            events=Events(), sendto=lambda data, addr: self.sent.append((data, addr)),
            counters=self.counters, histogram=LatencyHistogram(), tap=self.tap,
        )  # fmt: skip
        talker = self.router.add(Peer("talker", ("127.0.0.1", 5000), red=True))  # type: ignore[arg-type]
        assert talker is not None
        self.talker = talker
        self.router.add(Peer("chrome", ("127.0.0.1", 5001), red=True))  # type: ignore[arg-type]
        self.router.add(Peer("headset", ("127.0.0.1", 5002)))  # type: ignore[arg-type]
        self.router.refresh_listeners()

    def feed(self, packets: list[bytes]) -> None:
        for i, p in enumerate(packets):
            self.router.on_rtp(self.talker, p, (1000 + 20 * i) * 1_000_000)

    def to(self, port: int) -> list[bytes]:
        return [d[1:] for d, addr in self.sent if addr[1] == port]


def test_red_listeners_get_red_the_others_the_primary_frame() -> None:
    w = RedWorld()
    w.feed([red(s) for s in range(10, 30)])
    chrome, headset = w.to(5001), w.to(5002)
    assert len(chrome) == len(headset) == 20 and w.to(5000) == []
    for c, h in zip(chrome, headset, strict=True):
        assert read_header(c)[0] == RED_PT and read_header(h)[0] == 111
        assert read_header(c)[2:5] == read_header(h)[2:5]  # the same rewritten seq/ts/ssrc
        assert payload_of(h)[2] == payload_of(c)[2][-len(payload_of(h)[2]) :]
    assert [payload_of(h)[2] for h in headset] == [frame(s) for s in range(10, 30)]
    assert w.counters.red_packets_in == w.counters.red_routed == 20
    assert w.counters.drop_bad_red == 0


def test_the_call_log_gets_plain_opus_with_lost_packets_recovered() -> None:
    w = RedWorld()
    sent = [s for s in range(10, 40) if s not in (20, 31)]  # two packets lost on the uplink
    w.feed([red(s) for s in sent])
    logged = [payload_of(p) for p in w.tap.packets]
    assert all(read_header(p)[0] == 111 for p in w.tap.packets)
    seqs = [s for s, _, _ in logged]
    assert seqs == list(range(seqs[0], 40))  # no gap: 20 and 31 from the redundancy
    assert all(payload == frame(s) for s, _, payload in logged)
    assert all(ts == s * 960 for s, ts, _ in logged)
    assert w.counters.red_recovered == 2


def test_plain_opus_from_a_talker_without_red_goes_to_everyone() -> None:
    w = RedWorld()
    w.feed([red(s, payload=frame(s), pt=111) for s in range(10, 20)])
    assert [payload_of(p)[2] for p in w.to(5001)] == [frame(s) for s in range(10, 20)]
    assert w.to(5001) == w.to(5002) and w.tap.packets


def test_malformed_red_is_dropped_and_counted() -> None:
    w = RedWorld()
    bad = [
        red(20, payload=bytes([0x80 | 111, 0, 0x3C, 50, 111]) + b"short"),  # length past the end
        red(21, payload=build_payload(b"x", [(960, b"a")])[:3]),  # truncated header
        red(22, payload=bytes([0x80 | 111, 0, 0, 1, 111]) + b"ab"),  # zero timestamp offset
    ]
    w.feed([red(s) for s in range(10, 20)] + bad)
    assert w.counters.drop_bad_red == 3
    assert len(w.to(5001)) == len(w.to(5002)) == 10
