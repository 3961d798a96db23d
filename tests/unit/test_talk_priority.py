"""The priority table, channel talk rules from the command line, and the headset's ducking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voice_client.ducking import Ducking
from voice_server.cli import main
from voice_server.signaling.messages import ClientJoin, parse_client_message
from voice_server.talk.priority import (
    DEFAULT_DUCK_DB,
    Kind,
    Level,
    duck_db,
    is_listener,
    level_for,
    validate_override,
)


def test_levels_come_from_the_role_the_channel_and_the_kind() -> None:
    assert level_for("staff", "a") == Level.ROUTINE == 1
    assert level_for("supervisor", "a") == level_for("admin", "a") == Level.URGENT == 2
    assert level_for("nobody-knows", "a") == 1
    raised = {"priority": {"a": 2}}
    assert level_for("staff", "a", raised) == 2 and level_for("staff", "b", raised) == 1
    assert level_for("supervisor", "a", {"priority": {"a": 1}}) == 2  # an override only raises
    assert level_for("staff", "a", {"priority": {"a": 3}}) == 1  # 3 is never stored, ignored
    assert level_for("staff", "a", kind=Kind.ALL_CALL) == 2
    assert level_for("staff", "a", kind=Kind.EMERGENCY) == 3
    for bad in (0, 3, True):
        with pytest.raises(ValueError):
            validate_override(bad)


def test_talk_rights_and_duck_level_from_settings() -> None:
    assert is_listener("a", {"listeners": ["a"]}) and not is_listener("b", {"listeners": ["a"]})
    assert not is_listener("a", None)
    assert duck_db(None) == DEFAULT_DUCK_DB == -15
    assert duck_db({"duck_db": -20}) == -20 and duck_db({"duck_db": 5}) == -15


def test_a_forged_priority_in_a_client_message_is_ignored() -> None:
    forged = {"v": 1, "type": "join", "token": "t", "channel": "ops", "device_id": "d"}
    msg = parse_client_message(json.dumps({**forged, "priority": 3}))
    assert isinstance(msg, ClientJoin) and "priority" not in msg.model_dump()


def run(tmp: Path, *argv: str) -> int:
    return main([*argv, "--data-dir", str(tmp)])


def test_channel_talk_rules_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, "channels", "add", "ops") == 0
    for name in ("sato", "kato"):
        assert run(tmp_path, "users", "add", name, "--role", "staff", "--no-password",
                   "--channel", "ops") == 0  # fmt: skip
    assert run(tmp_path, "users", "add", "mori", "--role", "staff", "--no-password") == 0
    assert run(tmp_path, "channels", "set", "ops", "--priority", "sato=2", "--duck-db", "-20") == 0
    assert run(tmp_path, "channels", "assign", "ops", "--listener", "kato") == 0
    capsys.readouterr()
    assert run(tmp_path, "channels", "list", "--json") == 0
    (ops,) = json.loads(capsys.readouterr().out)
    assert ops["priority"] == {"sato": 2} and ops["listeners"] == ["kato"]
    assert ops["duck_db"] == -20
    # refused, with a clear one-line error: level 3, not a member, not USER=LEVEL
    assert run(tmp_path, "channels", "set", "ops", "--priority", "sato=3") == 2
    assert "levels 1-2 only" in capsys.readouterr().err
    assert run(tmp_path, "channels", "set", "ops", "--priority", "mori=2") == 2
    assert "not a member" in capsys.readouterr().err
    assert run(tmp_path, "channels", "set", "ops", "--priority", "sato") == 2
    assert "USER=LEVEL" in capsys.readouterr().err
    # back to the role's level and to talking
    assert run(tmp_path, "channels", "set", "ops", "--priority", "sato=1") == 0
    assert run(tmp_path, "channels", "unassign", "ops", "--listener", "kato") == 0
    capsys.readouterr()
    assert run(tmp_path, "channels", "list", "--json") == 0
    (ops,) = json.loads(capsys.readouterr().out)
    assert ops["priority"] == {} and ops["listeners"] == []


def test_the_headset_ducks_every_slot_but_the_cut_in() -> None:
    d = Ducking(["ops", "hq"], slots=3)
    assert d.gain("1") == 1.0
    d.set("ops", 3, -20)
    assert d.gain("3") == 1.0 and d.gain("1") == pytest.approx(0.1)
    assert d.gain("4") == pytest.approx(0.1)  # hq's slot 1 too
    d.set("hq", 1, -15)  # a second cut-in: neither cut-in is ducked, the deepest applies
    assert d.gain("4") == 1.0 and d.gain("2") == pytest.approx(0.1)
    d.set("ops", 3, 0)
    d.set("hq", 1, 0)
    assert d.gain("2") == 1.0 and d.db == 0
    d.set("nowhere", 1, -15)  # a channel not heard: ignored
    assert d.gain("1") == 1.0
