"""The dispatcher console's pure rules: supervision, monitor limits, targets, slot numbers."""

from __future__ import annotations

import pytest

from voice_server.identity.principal import Principal, UserRecord
from voice_server.identity.tokens import Role
from voice_server.signaling import console as c
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.messages import parse_client_message


def principal(role: Role, *channels: str, everything: bool = False) -> Principal:
    return Principal("sup", "Sup", role, frozenset(channels), everything, 0)


def record(role: Role, supervised: tuple[str, ...]) -> UserRecord:
    return UserRecord("sup", True, role, ("ops", "hq", "yard"), None, supervised)


def test_supervision_token_only_and_with_accounts() -> None:
    assert "ops" in c.supervision(principal(Role.SUPERVISOR, "ops"), None)
    assert "ops" not in c.supervision(principal(Role.STAFF, "ops"), None)
    # accounts: what the directory says, narrowed by the token
    sup = c.supervision(principal(Role.SUPERVISOR, "ops", "hq"), record(Role.SUPERVISOR, ("hq",)))
    assert "hq" in sup and "ops" not in sup
    everything = principal(Role.ADMIN, everything=True)
    assert "yard" in c.supervision(everything, record(Role.ADMIN, ("*",)))
    assert "yard" not in c.supervision(everything, record(Role.ADMIN, ()))  # admin, unassigned


def code_of(fn: object, *args: object) -> str:
    with pytest.raises(ProtocolError) as exc:
        fn(*args)  # type: ignore[operator]
    return exc.value.code.value


def test_monitor_keeps_order_ignores_repeats_and_caps_at_eight() -> None:
    console = c.Console("ops")
    console = c.monitor(console, ["hq", "ops", "hq", "yard"], None)
    assert console.heard == ("ops", "hq", "yard")
    many = [f"c{i}" for i in range(5)]
    console = c.monitor(console, many, None)
    assert len(console.heard) == c.MAX_HEARD
    before = console
    assert code_of(c.monitor, console, ["one-more"], None) == ErrorCode.TOO_MANY_CHANNELS
    assert console == before  # nothing changed
    assert c.unmonitor(console, ["hq"], None).heard == ("ops", "yard", *many)
    assert code_of(c.unmonitor, console, ["ops"], None) == ErrorCode.INVALID_FIELD


def test_targets_and_routes() -> None:
    assert code_of(c.channel_target, [], None) == ErrorCode.EMPTY_TARGET
    assert code_of(c.direct_target, "bea", {}, None) == ErrorCode.TARGET_OFFLINE
    console = c.Console("ops", ("hq", "yard"))
    plain = c.console_route(console, 1, False)
    assert plain.sends == ("ops",) and plain.hears == ("ops", "hq", "yard")
    allcall = c.Console("ops", ("hq",), c.channel_target(["hq", "yard", "hq"], None))
    route = c.console_route(allcall, 1, False)
    assert route.sends == ("hq", "yard") and route.priority == 2  # an all-call is level 2
    assert allcall.target is not None and allcall.target.kind.value == "all_call"
    direct = c.direct_target("bea", {"s2": "yard", "s1": "hq"}, None)
    route = c.console_route(c.Console("ops", (), direct), 2, False)
    assert route.sends == ("hq", "yard") and route.only == frozenset({"s1", "s2"})
    assert direct.kind.value == "direct"
    # a listener in its own channel talks nowhere by default
    assert c.console_route(c.Console("ops"), 1, True).sends == ()


def test_slots_map_and_session_slots() -> None:
    blocks = (("ops", (11, 12, 13)), ("hq", (21, 22, 23)), ("ops", (31, 32, 33)))
    entries = c.slots_map(blocks)
    assert [e.mid for e in entries] == [str(i) for i in range(1, 10)]
    assert (entries[3].channel, entries[3].channel_slot) == ("hq", 1)
    assert c.session_slot(blocks, "hq", 2) == 5
    assert c.session_slot(blocks, "ops", 1) == 7  # the channel's newest block
    assert c.session_slot(blocks, "yard", 1) is None
    assert c.session_slot(blocks, "hq", 4) is None
    assert not c.too_many_mlines(blocks)
    assert c.too_many_mlines(tuple((f"c{i}", (1, 2, 3)) for i in range(22)))  # 67 m-lines
    # a channel heard whose block the next offer appends (before the first answer)
    assert c.session_slot(blocks, "yard", 2, ("ops", "hq", "gate", "yard")) == 14


@pytest.mark.parametrize(
    "raw",
    [
        '{"v":1,"type":"monitor","channels":[]}',
        '{"v":1,"type":"monitor","channels":["a","b","c","d","e","f","g","h","i"]}',
        '{"v":1,"type":"monitor","channels":["../x"]}',
        '{"v":1,"type":"monitor","channels":"ops"}',
        '{"v":1,"type":"unmonitor"}',
        '{"v":1,"type":"talk_target","channels":["ops"],"extra":1}',
        '{"v":1,"type":"talk_target","user":""}',
        '{"v":1,"type":"talk_target","user":"a\\u0000b"}',
    ],
)
def test_malformed_console_messages_are_invalid_field(raw: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        parse_client_message(raw)
    assert exc.value.code is ErrorCode.INVALID_FIELD


def test_console_messages_parse() -> None:
    msg = parse_client_message('{"v":1,"type":"talk_target","user":"bea","id":"t1"}')
    assert msg.type == "talk_target" and msg.user == "bea"  # type: ignore[union-attr]
    msg = parse_client_message('{"v":1,"type":"monitor","channels":["hq","yard"]}')
    assert msg.channels == ["hq", "yard"]  # type: ignore[union-attr]
