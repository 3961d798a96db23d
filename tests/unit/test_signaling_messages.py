import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.messages import (
    ClientJoin,
    ClientPing,
    ServerError,
    encode,
    parse_client_message,
)


def _join(**kw: object) -> str:
    msg = {"v": 1, "type": "join", "token": "t.t.t", "channel": "ops", "device_id": "dev-1"}
    msg.update(kw)
    return json.dumps(msg)


def _code(text: str | bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    return info.value.code


def test_valid_join_is_parsed_into_its_model() -> None:
    msg = parse_client_message(_join(session_id="abc", id="r1"))
    assert isinstance(msg, ClientJoin)
    assert (msg.channel, msg.device_id, msg.session_id, msg.id) == ("ops", "dev-1", "abc", "r1")


def test_ping_without_id_is_valid() -> None:
    assert isinstance(parse_client_message('{"v":1,"type":"ping"}'), ClientPing)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_MESSAGE),
        ("[1,2]", ErrorCode.BAD_MESSAGE),
        ('{"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":2,"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":true,"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"v":1,"type":"dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"v":1,"type":7}', ErrorCode.UNKNOWN_TYPE),
        ('{"v":1,"type":"ping","extra":1}', ErrorCode.INVALID_FIELD),
        ('{"v":1,"type":"join","channel":"ops","device_id":"d"}', ErrorCode.TOKEN_MISSING),
        (
            '{"v":1,"type":"join","token":"","channel":"ops","device_id":"d"}',
            ErrorCode.TOKEN_MISSING,
        ),
    ],
)
def test_malformed_messages_get_stable_codes(text: str, code: ErrorCode) -> None:
    assert _code(text) == code


def test_channel_names_outside_the_slug_alphabet_are_refused() -> None:
    assert _code(_join(channel="../etc")) == ErrorCode.INVALID_FIELD
    assert _code(_join(channel="避難所")) == ErrorCode.INVALID_FIELD


def test_oversized_message_is_refused_before_parsing() -> None:
    assert _code(" " * (64 * 1024 + 1)) == ErrorCode.TOO_LARGE


def test_validation_error_never_echoes_the_token() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(_join(token="SECRET-TOKEN", channel=5))
    assert "SECRET-TOKEN" not in info.value.message


def test_error_carries_the_request_id_for_correlation() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message('{"v":1,"type":"ping","id":"r9","x":1}')
    assert info.value.request_id == "r9"


def test_server_messages_encode_to_json_with_version_and_type() -> None:
    out = json.loads(encode(ServerError(code=ErrorCode.BAD_MESSAGE, message="m")))
    assert out == {
        "v": 1,
        "type": "error",
        "code": "bad_message",
        "message": "m",
        "id": None,
        "fatal": False,
    }


@settings(max_examples=500)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10)).map(json.dumps),
    )
)
def test_any_input_either_parses_or_raises_protocol_error(data: str | bytes) -> None:
    try:
        parse_client_message(data)
    except ProtocolError:
        pass
