"""Pre-emption in the channel router: a higher level always gets a slot, equal never pre-empts."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.unit.test_media_router import FakeTransport
from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.route import Route
from voice_server.media.router import Router
from voice_server.media.rtp import build_rtp, read_header
from voice_server.talk.detector import TalkRules

LOUD, QUIET = 20, 127
SLOT_SSRC = 1000


@dataclass
class Events:
    log: list[tuple[str, ...]] = field(default_factory=list)

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("started", session_id, str(slot)))

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self.log.append(("stopped", session_id, str(slot)))

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        self.log.append(("busy", session_id))

    def preempted(self, session_id: str, channel: str, slot: int, by: str) -> None:
        self.log.append(("preempted", session_id, str(slot), by))


@dataclass
class Tap:
    packets: dict[str, int] = field(default_factory=dict)

    def open(self, session_id: str, channel: str, preroll: list[object], now_ms: int) -> str:
        self.packets.setdefault(session_id, 0)
        self.packets[session_id] += len(preroll)
        return session_id

    def packet(self, handle: str, plain: bytes) -> None:
        self.packets[handle] += 1

    def close(self, handle: str) -> None:
        pass


class World:
    """Talkers with levels (name -> level); listener ``lis`` at port 6000 hears everyone."""

    def __init__(self, levels: dict[str, int], slots: int = 3) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.events = Events()
        self.counters = MediaCounters()
        self.tap = Tap()
        self.router = Router(
            "ops",
            slot_ssrcs=tuple(SLOT_SSRC + i for i in range(slots)),
            payload_type=111,
            rules=TalkRules(attack_ms=40, hangover_ms=600),
            preroll_packets=5,
            events=self.events,
            sendto=lambda data, addr: self.sent.append((data, addr)),
            counters=self.counters,
            histogram=LatencyHistogram(),
            tap=self.tap,
        )
        self.members = {}
        for i, (name, level) in enumerate(levels.items()):
            tr = FakeTransport(name, ("127.0.0.1", 5000 + i))
            self.members[name] = self.router.add(tr, Route(("ops",), ("ops",), priority=level))  # type: ignore[arg-type]
        self.router.add(FakeTransport("lis", ("127.0.0.1", 6000)), Route((), ("ops",)))  # type: ignore[arg-type]
        self.router.refresh_listeners()
        self.seq = dict.fromkeys(levels, 100)
        self.t = 0

    def packet(self, name: str, level: int) -> None:
        seq = self.seq[name] = self.seq[name] + 1
        data = build_rtp(
            payload_type=111,
            seq=seq,
            timestamp=seq * 960,
            ssrc=hash(name) & 0xFFFF,
            payload=b"opus:" + name.encode(),
            audio_level=(True, level),
        )
        self.router.on_rtp(self.members[name], data, self.t * 1_000_000)

    def run(self, frames: int, **talkers: int) -> None:
        """``frames`` 20 ms steps; each named talker sends one packet a step at its level."""
        for _ in range(frames):
            for name, level in talkers.items():
                self.packet(name, level)
            self.t += 20
            self.router.tick(self.t * 1_000_000)

    def heard(self) -> list[str]:
        """Whose audio the listener got, in order (one entry per copy)."""
        return [d[1:].split(b"opus:")[1].decode() for d, addr in self.sent if addr[1] == 6000]

    def mark(self) -> int:
        return len(self.sent)

    def heard_since(self, mark: int) -> set[str]:
        return {d[1:].split(b"opus:")[1].decode() for d, a in self.sent[mark:] if a[1] == 6000}


def staff_hold_all_slots(w: World) -> None:
    w.run(10, s1=LOUD, s2=LOUD, s3=LOUD)
    assert [e[0] for e in w.events.log] == ["started"] * 3


def test_a_supervisor_cuts_in_on_the_most_recent_staff_talker() -> None:
    w = World({"s1": 1, "s2": 1, "s3": 1, "sup": 2})
    staff_hold_all_slots(w)
    w.events.log.clear()
    mark = w.mark()
    w.run(1, s1=LOUD, s2=LOUD, s3=LOUD, sup=LOUD)  # the supervisor's first voiced packet
    # heard at once (no attack wait), and s3 (started last) paused at once
    assert "sup" in w.heard_since(mark) and w.events.log == []
    mark = w.mark()
    w.run(5, s1=LOUD, s2=LOUD, s3=LOUD, sup=LOUD)  # the attack confirms
    assert w.heard_since(mark) == {"s1", "s2", "sup"}
    assert w.events.log == [
        ("stopped", "s3", "3"),
        ("preempted", "s3", "3", "sup"),
        ("started", "sup", "3"),
    ]
    sup_copies = [p for p, a in w.sent if a[1] == 6000 and b"opus:sup" in p]
    assert {read_header(p[1:])[4] for p in sup_copies} == {SLOT_SSRC + 2}
    assert w.counters.preemptions == 1
    # the pre-empted talker is still logged, and gets the slot back when the cut-in ends
    logged = w.tap.packets["s3"]
    w.run(10, s1=LOUD, s2=LOUD, s3=LOUD, sup=LOUD)
    assert w.tap.packets["s3"] == logged + 10
    w.events.log.clear()
    w.run(40, s1=LOUD, s2=LOUD, s3=LOUD, sup=QUIET)  # hangover ends the supervisor
    assert w.events.log == [("stopped", "sup", "3"), ("started", "s3", "3")]


def test_a_click_gives_the_slot_back_silently() -> None:
    w = World({"s1": 1, "s2": 1, "s3": 1, "sup": 2})
    staff_hold_all_slots(w)
    w.events.log.clear()
    w.run(1, s1=LOUD, s2=LOUD, s3=LOUD, sup=LOUD)  # a click
    w.run(3, s1=LOUD, s2=LOUD, s3=LOUD, sup=QUIET)
    mark = w.mark()
    w.run(5, s1=LOUD, s2=LOUD, s3=LOUD)
    assert w.events.log == []  # nobody saw anything
    assert w.heard_since(mark) == {"s1", "s2", "s3"}
    assert w.router.table.slot_of("s3") == 3


def test_equal_levels_never_preempt() -> None:
    w = World({"s1": 1, "s2": 1, "s3": 1, "s4": 1})
    staff_hold_all_slots(w)
    w.events.log.clear()
    mark = w.mark()
    w.run(10, s1=LOUD, s2=LOUD, s3=LOUD, s4=LOUD)
    assert w.events.log == [("busy", "s4")]
    assert w.heard_since(mark) == {"s1", "s2", "s3"}
    assert w.counters.preemptions == 0


def test_supervisors_do_not_preempt_each_other() -> None:
    w = World({"a": 2, "b": 2, "c": 2, "d": 2})
    w.run(10, a=LOUD, b=LOUD, c=LOUD)
    w.events.log.clear()
    w.run(10, a=LOUD, b=LOUD, c=LOUD, d=LOUD)
    assert w.events.log == [("busy", "d")]


def test_level_three_holders_are_never_preempted_and_the_lowest_goes_first() -> None:
    w = World({"e1": 3, "sup": 2, "s1": 1, "e2": 3, "e3": 3})
    w.run(10, e1=LOUD, sup=LOUD, s1=LOUD)  # slots: e1, sup, s1 (s1 started last)
    w.events.log.clear()
    w.run(10, e1=LOUD, sup=LOUD, s1=LOUD, e2=LOUD)
    assert ("preempted", "s1", "3", "e2") in w.events.log  # the lowest level, not sup
    w.events.log.clear()
    w.run(10, e1=LOUD, sup=LOUD, s1=LOUD, e2=LOUD, e3=LOUD)
    assert ("preempted", "sup", "2", "e3") in w.events.log
    w.events.log.clear()
    w.run(10, e1=LOUD, sup=LOUD, s1=LOUD, e2=LOUD, e3=LOUD)
    assert not any(e[0] == "preempted" for e in w.events.log)  # only level 3 hold slots now


def test_the_most_recently_started_of_the_lowest_level_is_preempted() -> None:
    w = World({"s1": 1, "s2": 1, "s3": 1, "sup": 2})
    w.run(10, s2=LOUD)
    w.run(10, s2=LOUD, s3=LOUD)
    w.run(10, s2=LOUD, s3=LOUD, s1=LOUD)  # s1 started last although its name sorts first
    w.events.log.clear()
    w.run(10, s1=LOUD, s2=LOUD, s3=LOUD, sup=LOUD)
    assert ("preempted", "s1", "3", "sup") in w.events.log


def test_a_listen_only_route_takes_no_slot() -> None:
    w = World({"s1": 1})
    assert "lis" not in w.router.members
    w.run(10, s1=LOUD)
    assert w.heard() and set(w.heard()) == {"s1"}
