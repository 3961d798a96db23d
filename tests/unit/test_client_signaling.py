"""The headset client's sans-I/O signaling session, fed with the server's own message models."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from voice_client.signaling import (
    AnswerOffer,
    ClientSession,
    Emit,
    End,
    NeedToken,
    Send,
    SessionState,
    Warn,
    websocket_url,
)
from voice_server.signaling import messages as m
from voice_server.signaling.errors import ErrorCode

ALICE = m.Participant(id="s-alice", sub="u1", name="Alice", device_id="hs-1")
BOB = m.Participant(id="s-bob", sub="u2", name="Bob", device_id="phone-2")


def joined(session_id: str = "s-alice", resumed: bool = False) -> str:
    return m.encode(
        m.ServerJoined(
            session_id=session_id,
            resumed=resumed,
            channel=m.ChannelInfo(name="ops", display_name="Operations"),
            you=ALICE,
            participants=[ALICE, BOB],
            grace_seconds=10,
            token_expires_at=1_900_000_000,
        )
    )


def joined_session() -> ClientSession:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    s.receive(joined())
    return s


def sent(actions: Sequence[object]) -> list[dict[str, object]]:
    return [a.message for a in actions if isinstance(a, Send)]


def test_join_is_the_first_message_and_carries_the_token() -> None:
    s = ClientSession(token="secret-token", channel="ops", device_id="hs-1")
    actions = s.start()
    assert len(actions) == 1 and isinstance(actions[0], Send)
    assert actions[0].message == {
        "v": 1,
        "type": "join",
        "token": "secret-token",
        "channel": "ops",
        "device_id": "hs-1",
    }
    assert s.state is SessionState.JOINING


def test_every_client_message_is_accepted_by_the_server_parser() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1", session_id="s-old")
    texts = [a.text() for a in s.start() if isinstance(a, Send)]
    s.receive(joined())
    for actions in (s.answer("v=0\r\n"), s.refresh("tok2"), s.ping(), s.leave()):
        texts += [a.text() for a in actions if isinstance(a, Send)]
    parsed = [m.parse_client_message(t) for t in texts]
    assert [p.type for p in parsed] == ["join", "answer", "refresh", "ping", "leave"]
    assert isinstance(parsed[0], m.ClientJoin) and parsed[0].session_id == "s-old"


def test_start_twice_is_a_programming_error() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    with pytest.raises(RuntimeError):
        s.start()


def test_joined_records_the_session_and_emits_the_roster() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    actions = s.receive(joined())
    assert s.state is SessionState.JOINED
    assert s.session_id == "s-alice"
    assert s.token_expires_at == 1_900_000_000
    assert s.grace_seconds == 10
    assert set(s.participants) == {"s-alice", "s-bob"}
    assert len(actions) == 1 and isinstance(actions[0], Emit)
    ev = actions[0].event
    assert ev["event"] == "joined" and ev["channel"] == "ops" and ev["you"]["name"] == "Alice"


def test_offer_after_join_asks_for_an_answer_which_is_sent() -> None:
    s = joined_session()
    actions = s.receive(m.encode(m.ServerOffer(sdp="v=0\r\noffer\r\n")))
    assert actions == [AnswerOffer("v=0\r\noffer\r\n")]
    assert sent(s.answer("v=0\r\nanswer\r\n")) == [
        {"v": 1, "type": "answer", "sdp": "v=0\r\nanswer\r\n"}
    ]
    assert s.answered


def test_offer_before_join_is_ignored_with_a_warning() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    actions = s.receive(m.encode(m.ServerOffer(sdp="v=0\r\n")))
    assert len(actions) == 1 and isinstance(actions[0], Warn)
    assert s.answer("v=0\r\n") == []


def test_talk_events_are_emitted_and_update_the_roster() -> None:
    s = joined_session()
    started = s.receive(m.encode(m.ServerTalkStarted(speaker=BOB, slot=2)))
    assert len(started) == 1 and isinstance(started[0], Emit)
    assert started[0].event["event"] == "talk_started"
    assert started[0].event["slot"] == 2
    assert started[0].event["speaker"]["name"] == "Bob"
    assert s.participants["s-bob"]["talking"] is True
    assert s.participants["s-bob"]["slot"] == 2
    stopped = s.receive(m.encode(m.ServerTalkStopped(speaker=BOB, slot=2)))
    assert isinstance(stopped[0], Emit) and stopped[0].event["event"] == "talk_stopped"
    assert s.participants["s-bob"]["talking"] is False
    assert s.participants["s-bob"]["slot"] is None


def test_own_talk_updates_you() -> None:
    s = joined_session()
    s.receive(m.encode(m.ServerTalkStarted(speaker=ALICE, slot=1)))
    assert s.you is not None and s.you["talking"] and s.you["slot"] == 1


def test_participants_joining_and_leaving_are_tracked() -> None:
    s = joined_session()
    carol = m.Participant(id="s-carol", sub="u3", name="Carol", device_id="d3")
    assert isinstance(s.receive(m.encode(m.ServerParticipantJoined(participant=carol)))[0], Emit)
    assert "s-carol" in s.participants
    left = s.receive(m.encode(m.ServerParticipantLeft(participant=carol, reason="left")))
    assert isinstance(left[0], Emit) and left[0].event["reason"] == "left"
    assert "s-carol" not in s.participants


def test_slot_busy_is_emitted() -> None:
    s = joined_session()
    actions = s.receive(m.encode(m.ServerSlotBusy(slots=3)))
    assert actions == [Emit({"event": "slot_busy", "slots": 3})]


def test_token_expiring_asks_for_a_token_and_refresh_sends_it() -> None:
    s = joined_session()
    assert s.receive(m.encode(m.ServerTokenExpiring(expires_at=1_900_000_060))) == [
        NeedToken(1_900_000_060)
    ]
    assert sent(s.refresh("fresh")) == [{"v": 1, "type": "refresh", "token": "fresh"}]
    actions = s.receive(m.encode(m.ServerRefreshed(expires_at=1_900_003_600)))
    assert s.token_expires_at == 1_900_003_600
    assert isinstance(actions[0], Emit)


def test_fatal_error_ends_the_session_with_the_server_code() -> None:
    s = ClientSession(token="bad", channel="ops", device_id="hs-1")
    s.start()
    err = m.ServerError(code=ErrorCode.TOKEN_INVALID, message="bad signature", fatal=True)
    assert s.receive(m.encode(err)) == [End(ok=False, reason="bad signature", code="token_invalid")]
    assert s.state is SessionState.ENDED
    assert s.receive(joined()) == []  # nothing after the end


def test_non_fatal_error_is_a_warning() -> None:
    s = joined_session()
    err = m.ServerError(code=ErrorCode.RATE_LIMITED, message="slow down")
    actions = s.receive(m.encode(err))
    assert actions == [Warn("server error rate_limited: slow down")]
    assert s.state is SessionState.JOINED


def test_leave_then_left_ends_the_session_cleanly() -> None:
    s = joined_session()
    assert sent(s.leave()) == [{"v": 1, "type": "leave"}]
    assert s.state is SessionState.LEAVING
    assert s.receive(m.encode(m.ServerLeft(reason="left"))) == [End(ok=True, reason="left")]


def test_left_without_leave_is_not_ok() -> None:
    s = joined_session()
    assert s.receive(m.encode(m.ServerLeft(reason="replaced"))) == [
        End(ok=False, reason="replaced")
    ]


def test_connection_lost_ends_the_session() -> None:
    s = joined_session()
    assert s.connection_lost() == [
        End(ok=False, reason="connection closed by the server", retry=True)
    ]
    assert s.connection_lost() == []
    t = joined_session()
    t.leave()
    assert t.connection_lost() == [End(ok=True, reason="left")]


def test_leave_before_joined_ends_without_sending() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    assert s.leave() == [End(ok=True, reason="left before joining")]


def test_pong_and_unknown_types_are_ignored() -> None:
    s = joined_session()
    assert s.receive(m.encode(m.ServerPong(server_time=1.0))) == []
    assert s.receive(json.dumps({"v": 1, "type": "something_new", "x": 1})) == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        json.dumps({"v": 1, "type": "talk_started", "speaker": "bob", "slot": 1}),
        json.dumps({"v": 1, "type": "talk_started", "speaker": {"id": "x"}}),
        json.dumps({"v": 1, "type": "offer", "sdp": 5}),
    ],
)
def test_malformed_server_messages_are_warnings_not_crashes(text: str) -> None:
    s = joined_session()
    actions = s.receive(text)
    assert len(actions) == 1 and isinstance(actions[0], Warn)
    assert s.state is SessionState.JOINED


def test_ping_is_sent_only_when_joined() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    assert s.ping() == []
    s.start()
    s.receive(joined())
    assert sent(s.ping()) == [{"v": 1, "type": "ping"}]


@pytest.mark.parametrize(
    ("server", "url"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws"),
        ("https://voice.example.org/", "wss://voice.example.org/ws"),
        ("ws://127.0.0.1:8000/ws", "ws://127.0.0.1:8000/ws"),
        ("http://host/prefix", "ws://host/prefix/ws"),
        ("HTTP://[::1]:9/", "ws://[::1]:9/ws"),
    ],
)
def test_server_url_becomes_the_websocket_url(server: str, url: str) -> None:
    assert websocket_url(server) == url


@pytest.mark.parametrize(
    "server",
    ["ftp://host", "127.0.0.1:8000", "http://", "http://host:99999", "http://h/?token=x", ""],
)
def test_bad_server_urls_are_rejected(server: str) -> None:
    with pytest.raises(ValueError, match="bad server URL"):
        websocket_url(server)


def test_joined_keeps_the_turn_relays_for_the_peer_connection() -> None:
    s = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s.start()
    msg = json.loads(joined())
    server = {"urls": ["turns:10.0.0.5:443?transport=tcp"], "username": "9:u1", "credential": "c"}
    msg["ice_servers"] = [server]
    s.receive(json.dumps(msg))
    assert s.ice_servers == [server]
    # a relay that is not turn:/turns: (a public STUN server, say) is refused, not used
    s2 = ClientSession(token="tok", channel="ops", device_id="hs-1")
    s2.start()
    msg["ice_servers"] = [{**server, "urls": ["stun:stun.example:3478"]}]
    s2.receive(json.dumps(msg))
    assert s2.state is SessionState.JOINED and s2.ice_servers == []


def test_migrate_ends_the_session_for_a_fresh_join_elsewhere() -> None:
    from voice_client.signaling import Move

    s = joined_session()
    actions = s.receive(m.encode(m.ServerMigrate(url="http://10.0.0.2:8000", deadline_s=30)))
    assert actions == [
        Emit({"event": "migrate", "url": "http://10.0.0.2:8000", "deadline_s": 30.0}),
        Move("http://10.0.0.2:8000"),
        End(ok=False, reason="migrate", retry=True),
    ]
    assert s.session_id is None  # the next join does not resume the drained node's session
    s.reconnect()
    assert "session_id" not in sent(s.start())[0]


def test_degraded_ends_the_session_for_a_fresh_join_on_the_next_node() -> None:
    from voice_client.signaling import Move

    s = joined_session()
    actions = s.receive(m.encode(m.ServerDegraded(channel="ops")))
    assert actions == [
        Emit({"event": "degraded", "channel": "ops"}),
        Move(None),  # the next configured node (or the same address, behind a proxy)
        End(ok=False, reason="degraded", retry=True),
    ]
    assert s.session_id is None


def test_a_join_refused_by_a_draining_node_moves_on_and_cluster_unavailable_retries() -> None:
    from voice_client.signaling import Move, NodeUnavailable

    s = ClientSession(token="t", channel="ops", device_id="hs-1")
    s.start()
    err = m.ServerError(code=ErrorCode.NODE_DRAINING, message="join another node")
    assert s.receive(m.encode(err)) == [
        Warn("server error node_draining: join another node"),
        Move(None),
    ]
    s2 = ClientSession(token="t", channel="ops", device_id="hs-1")
    s2.start()
    err = m.ServerError(code=ErrorCode.CLUSTER_UNAVAILABLE, message="try again")
    assert s2.receive(m.encode(err)) == [
        Warn("server error cluster_unavailable: try again"),
        NodeUnavailable(),  # the next try may go to another configured node
    ]
    # the server closes the socket next (1013): joining again is allowed
    assert s2.connection_lost() == [
        End(ok=False, reason="connection closed by the server", retry=True)
    ]


def test_a_migrate_goes_only_to_a_configured_node() -> None:
    from voice_client.nodes import next_node

    a, b, c = "ws://10.0.0.1:8000/ws", "ws://10.0.0.2:8000/ws", "ws://10.0.0.3:8000/ws"
    assert next_node(a, [a, b], "http://10.0.0.2:8000") == (b, False)
    assert next_node(a, [a, b], "http://evil.example:8000") == (a, True)  # not followed
    assert next_node(a, [a, b], "ftp://x") == (a, True)
    assert next_node(a, [a, b, c], None) == (b, False)  # no target named: the next configured
    assert next_node(c, [a, b, c], None) == (a, False)
    assert next_node(a, [a], None) == (a, False)  # none other: the same after the back-off


def test_failover_goes_back_once_after_a_drop_and_on_to_the_next_node_otherwise() -> None:
    from voice_client.nodes import Lost, failover_node

    a, b, c = "ws://10.0.0.1:8000/ws", "ws://10.0.0.2:8000/ws", "ws://10.0.0.3:8000/ws"
    nodes = [a, b, c]
    # a dropped socket: the first try goes back (a resume there keeps the session)
    assert failover_node(a, nodes, Lost.DROPPED) == a
    # a silent (hung) node, nothing listening, a failed handshake, cluster_unavailable: next
    for why in (Lost.SILENT, Lost.REFUSED, Lost.FAILED, Lost.UNAVAILABLE):
        assert failover_node(a, nodes, why) == b, why
        assert failover_node(b, nodes, why) == c, why
        assert failover_node(c, nodes, why) == a, why  # in turn, round again
    # one configured node (or --node repeating --server): always the same one
    for why in Lost:
        assert failover_node(a, [a], why) == a
        assert failover_node(a, [a, a], why) == a
    # the node killed: drop, then every try refused -> each configured node in turn
    where, tries = a, []
    for why in (Lost.DROPPED, Lost.REFUSED, Lost.REFUSED, Lost.REFUSED):
        where = failover_node(where, nodes, why)
        tries.append(where)
    assert tries == [a, b, c, a]
