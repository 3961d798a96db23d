"""RTCP keepalives: an empty receiver report every KEEPALIVE_SECONDS to each participant whose
voice arrives (the phone's stall detector hears from the server while it talks) and every
LISTENER_KEEPALIVE_SECONDS to those hearing a talk, none to one in DTX silence, none to one not
connected; the loss-bearing reports stay on their 1 s period."""

from __future__ import annotations

from voice_server.media.plane import MediaPlane
from voice_server.media.reception import KEEPALIVE_MIN_PACKETS, Reception
from voice_server.media.route import Route
from voice_server.media.rtcp import ReceiverReport, parse_compound
from voice_server.media.transport import TransportState
from voice_server.talk.detector import TalkRules

SSRC = 0x0102_0304


class PlainTx:
    def protect_rtcp(self, data: bytes) -> bytes:
        return data


class Events:
    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        pass

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        pass

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        pass


def feed(rec: Reception, first: int, count: int) -> None:
    for i in range(first, first + count):
        rec.packet(i & 0xFFFF, i * 960, SSRC, 100.0 + i * 0.02)


def test_voice_marks_a_round_and_dtx_silence_does_not() -> None:
    rec = Reception()
    assert not rec.voiced_since_mark()  # nothing yet
    feed(rec, 0, 12)  # 250 ms of 20 ms packets
    assert rec.voiced_since_mark()
    assert not rec.voiced_since_mark()  # nothing since the mark
    feed(rec, 12, KEEPALIVE_MIN_PACKETS - 1)  # DTX: one packet per 400 ms, never this many
    assert not rec.voiced_since_mark()
    feed(rec, 20, KEEPALIVE_MIN_PACKETS)
    assert rec.voiced_since_mark()


def test_a_new_ssrc_counts_from_zero() -> None:
    rec = Reception()
    feed(rec, 0, 50)
    assert rec.voiced_since_mark()
    for i in range(KEEPALIVE_MIN_PACKETS):  # the talker's stream restarted: its count with it
        rec.packet(i, i * 960, SSRC + 1, 200.0 + i * 0.02)
    assert rec.voiced_since_mark()


def make_plane() -> tuple[MediaPlane, list[tuple[bytes, tuple[str, int]]]]:
    sent: list[tuple[bytes, tuple[str, int]]] = []
    plane = MediaPlane(
        host="127.0.0.1", port=5004, announce_ip="127.0.0.1", slots=2, events=Events(),
        rules=TalkRules(attack_ms=40, hangover_ms=600),
    )  # fmt: skip
    plane.endpoint.sendto = lambda data, addr: sent.append((data, addr))  # type: ignore[method-assign]
    return plane, sent


def join(plane: MediaPlane, sid: str, port: int, *, connected: bool = True) -> Reception:
    plane.open(sid, Route(("ops",), ("ops",)))
    tr = plane.links[sid].transport
    if connected:
        tr.state = TransportState.CONNECTED
        tr.remote = ("127.0.0.1", port)
        tr.tx = PlainTx()  # type: ignore[assignment]
    return tr.reception


def test_keepalives_go_to_talkers_sending_voice_only() -> None:
    plane, sent = make_plane()
    feed(join(plane, "talker", 6000), 0, 12)
    feed(join(plane, "quiet", 6001), 0, 1)  # a DTX packet
    join(plane, "listener", 6002)  # sends nothing
    feed(join(plane, "connecting", 6003, connected=False), 0, 12)
    plane._send_keepalives()
    assert [addr for _, addr in sent] == [("127.0.0.1", 6000)]
    (report, *rest) = parse_compound(sent[0][0])
    assert isinstance(report, ReceiverReport)
    assert report.reports == ()  # no loss figure: the 1 s reports carry that
    assert rest  # SDES with our CNAME
    assert plane.counters.rtcp_keepalives == 1
    plane._send_keepalives()  # nothing arrived since: the talker stopped (or its path did)
    assert len(sent) == 1


def test_keepalives_go_to_everyone_hearing_a_channel_while_someone_holds_a_slot() -> None:
    """A listener's audio pauses (DTX) and a vanished talker keeps its slot for the hangover:
    keepalives to those who hear a talk tell a listener's dead path from either."""
    plane, sent = make_plane()
    join(plane, "talker", 6000)  # in DTX silence this round: nothing voiced
    join(plane, "listener", 6001)
    plane.open("elsewhere", Route(("hq",), ("hq",)))
    plane._send_listener_keepalives()
    assert sent == []  # nobody talks
    plane.routers["ops"].members["talker"].slot = 0
    plane._send_listener_keepalives()
    assert sorted(addr for _, addr in sent) == [("127.0.0.1", 6000), ("127.0.0.1", 6001)]


def test_a_talker_gets_its_own_keepalives_not_the_listeners_too() -> None:
    plane, sent = make_plane()
    talker = join(plane, "talker", 6000)
    join(plane, "listener", 6001)
    plane.routers["ops"].members["talker"].slot = 0
    for n in range(5):  # half a second: five talker rounds, two listener rounds
        feed(talker, n * 5, 5)  # 100 ms of voice a round
        plane._send_keepalives()
        if n % 2:
            plane._send_listener_keepalives()
    to = [addr[1] for _, addr in sent]
    assert to.count(6000) == 5 and to.count(6001) == 2
