"""The channel router: talk bursts take slots, audio goes to everyone but the talker."""

from __future__ import annotations

from dataclasses import dataclass, field

from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.router import Router
from voice_server.media.rtp import build_rtp, read_header
from voice_server.talk.detector import TalkRules

LOUD, QUIET = 20, 127


class FakeTx:
    def protect(self, data: bytes) -> bytes:
        return b"P" + data


@dataclass
class FakeTransport:
    session_id: str
    remote: tuple[str, int]
    media_ready: bool = True
    level_ext_id: int = 1
    tx: FakeTx = field(default_factory=FakeTx)


@dataclass
class Events:
    log: list[tuple[str, str, int]] = field(default_factory=list)

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("started", session_id, slot))

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("stopped", session_id, slot))

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self.log.append(("busy", session_id, slots))


class World:
    def __init__(self, names: list[str], slots: int = 3) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.events = Events()
        self.counters = MediaCounters()
        self.router = Router(
            "ops",
            slot_ssrcs=tuple(1000 + i for i in range(slots)),
            payload_type=111,
            rules=TalkRules(attack_ms=40, hangover_ms=600),
            preroll_packets=5,
            events=self.events,
            sendto=lambda data, addr: self.sent.append((data, addr)),
            counters=self.counters,
            histogram=LatencyHistogram(),
        )
        self.members = {}
        for i, name in enumerate(names):
            tr = FakeTransport(name, ("127.0.0.1", 5000 + i))
            self.members[name] = self.router.add(tr)  # type: ignore[arg-type]
        self.router.refresh_listeners()
        self.seq = dict.fromkeys(names, 100)

    def packet(self, name: str, t_ms: int, level: int) -> None:
        seq = self.seq[name] = self.seq[name] + 1
        data = build_rtp(
            payload_type=111,
            seq=seq,
            timestamp=seq * 960,
            ssrc=hash(name) & 0xFFFF,
            payload=b"opus" + name.encode(),
            audio_level=(True, level),
        )
        self.router.on_rtp(self.members[name], data, t_ms * 1_000_000)

    def talk(self, name: str, start_ms: int, packets: int, level: int = LOUD) -> int:
        for i in range(packets):
            self.packet(name, start_ms + 20 * i, level)
        return start_ms + 20 * packets

    def to(self, port: int) -> list[bytes]:
        return [d[1:] for d, addr in self.sent if addr[1] == port]


def test_a_talker_gets_slot_one_and_everyone_else_hears_it() -> None:
    w = World(["ann", "bea", "cai"])
    w.talk("ann", 0, 20)
    assert w.events.log == [("started", "ann", 1)]
    assert w.to(5000) == []  # the talker never hears itself
    for port in (5001, 5002):
        got = w.to(port)
        assert len(got) == 20  # pre-roll (attack packets) included: nothing cut
        assert all(read_header(p)[4] == 1000 for p in got)  # slot 1's fixed SSRC
        assert all(b"opusann" in p for p in got)


def test_sequence_numbers_are_continuous_across_talkers_on_one_slot() -> None:
    w = World(["ann", "bea", "cai"], slots=1)
    end = w.talk("ann", 0, 10)
    end = w.talk("ann", end, 40, QUIET)  # hangover ends ann's burst
    w.talk("bea", end + 100, 10)
    seqs = [read_header(p)[2] for p in w.to(5002)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert ("stopped", "ann", 1) in w.events.log and ("started", "bea", 1) in w.events.log


def test_a_single_loud_packet_is_no_talk_burst_and_gives_its_slot_back() -> None:
    w = World(["ann", "bea"])
    w.packet("ann", 0, LOUD)  # forwarded at once, on a tentatively held slot
    w.talk("ann", 20, 10, QUIET)
    assert w.events.log == []  # never a talk event for a click
    assert w.router.table.busy is False and w.router.table.free == 3
    assert len(w.to(5001)) <= 2  # the click (and at most the packet that ended it)


def test_fourth_talker_gets_slot_busy_then_the_freed_slot() -> None:
    w = World(["t1", "t2", "t3", "t4", "lis"])
    t = 0
    for _ in range(5):  # interleave so all four talk at once
        for name in ("t1", "t2", "t3", "t4"):
            w.packet(name, t, LOUD)
        t += 20
    assert [e for e in w.events.log if e[0] == "busy"] == [("busy", "t4", 3)]
    assert sorted(e[2] for e in w.events.log if e[0] == "started") == [1, 2, 3]
    before = len(w.to(5004))
    for _ in range(40):  # t1 goes quiet, t4 keeps talking
        w.packet("t1", t, QUIET)
        w.packet("t4", t, LOUD)
        t += 20
    assert ("stopped", "t1", 1) in w.events.log
    assert w.events.log[-1] == ("started", "t4", 1)
    assert len(w.to(5004)) > before
    assert w.counters.drop_slot_busy > 0


def test_tick_ends_a_burst_when_packets_stop() -> None:
    w = World(["ann", "bea"])
    end = w.talk("ann", 0, 10)
    w.router.tick((end + 100) * 1_000_000)
    assert w.events.log == [("started", "ann", 1)]
    w.router.tick((end + 700) * 1_000_000)
    assert w.events.log[-1] == ("stopped", "ann", 1)


def test_a_held_talk_keeps_its_slot_across_the_talkers_ice_restart() -> None:
    w = World(["ann", "bea"])
    end = w.talk("ann", 0, 10)  # ann's network goes away after this
    assert w.router.hold_talk("ann", (end + 400) * 1_000_000, 1500)  # her ICE restart
    w.router.tick((end + 700) * 1_000_000)  # past the hangover: still held
    assert w.events.log == [("started", "ann", 1)] and w.router.active_talkers == 1
    w.talk("ann", end + 600, 5)  # her voice is back, same burst, same slot
    assert w.events.log == [("started", "ann", 1)]
    assert not w.router.hold_talk("bea", end * 1_000_000, 1500)  # holds no slot
    w.router.tick((end + 700 + 600) * 1_000_000)
    assert w.events.log[-1] == ("stopped", "ann", 1)


def test_leaving_talker_frees_its_slot_and_is_announced() -> None:
    w = World(["ann", "bea"])
    w.talk("ann", 0, 10)
    w.router.remove("ann")
    assert w.events.log[-1] == ("stopped", "ann", 1)
    assert w.router.table.busy is False


def test_listener_not_yet_connected_gets_nothing() -> None:
    w = World(["ann", "bea"])
    w.members["bea"].transport.media_ready = False  # type: ignore[attr-defined]
    w.router.refresh_listeners()
    w.talk("ann", 0, 10)
    assert w.sent == []


def test_malformed_rtp_is_counted_not_raised() -> None:
    w = World(["ann", "bea"])
    bad = bytes([0x90, 111, 0, 1]) + b"\0" * 8 + bytes([0xBE, 0xDE, 0, 9])  # ext longer than pkt
    w.router.on_rtp(w.members["ann"], bad, 0)
    assert w.counters.drop_bad_rtp == 1


def test_fan_out_follows_a_listeners_new_media_address_after_refresh() -> None:
    w = World(["a", "b", "c"])
    w.talk("a", 0, 5)
    w.sent.clear()
    w.members["b"].transport.remote = ("127.0.0.1", 6001)
    w.router.refresh_listeners()
    w.packet("a", 200, LOUD)
    assert sorted(addr for _, addr in w.sent) == [("127.0.0.1", 5002), ("127.0.0.1", 6001)]


def test_forwarding_histogram_counts_every_copy_once() -> None:
    names = [f"m{i}" for i in range(80)]  # more listeners than one observation chunk
    w = World(names)
    w.talk("m0", 0, 10)
    hist = w.router._hist
    assert w.counters.packets_out == len(w.sent) > 0
    assert hist.count == w.counters.packets_out
    assert w.counters.bytes_out == sum(len(d) for d, _ in w.sent)


def test_a_copy_that_cannot_be_protected_is_counted_and_the_rest_still_go() -> None:
    class Refuses:
        def protect(self, data: bytes) -> bytes:
            raise ValueError("packet is too long")

    w = World(["a", "b", "c"])
    w.members["b"].transport.tx = Refuses()
    w.router.refresh_listeners()
    w.talk("a", 0, 5)
    assert {addr for _, addr in w.sent} == {("127.0.0.1", 5002)}
    assert w.counters.drop_send_error == len(w.sent) > 0
