"""10,000 generated malformed messages: no crash, every one answered, a valid join still works."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from tests.servers import ServerProcess, running_server
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import issue_token

pytestmark = pytest.mark.integration

_json_leaf = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
)
_json = st.recursive(
    _json_leaf,
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
_types = st.sampled_from(["join", "leave", "answer", "refresh", "ping", "offer", "", "JOIN"])
_fields = st.dictionaries(
    st.sampled_from(["v", "type", "token", "channel", "device_id", "sdp", "id", "session_id", "x"]),
    _json,
    max_size=6,
)


@st.composite
def _shaped(draw: st.DrawFn) -> str:
    msg: dict[str, Any] = draw(_fields)
    if draw(st.booleans()):
        msg["v"] = draw(st.sampled_from([1, 1, 2, "1", None, True]))
    if draw(st.booleans()):
        msg["type"] = draw(_types)
    return json.dumps(msg)


MALFORMED = st.one_of(
    _shaped(),
    _json.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"VOICE_RATE_PER_SECOND": "1000000", "VOICE_RATE_BURST": "1000000"}
    with running_server(tmp_path_factory.mktemp("fuzz"), env=env) as srv:
        yield srv


class _Client:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        key = load_or_create_key(server.data_dir)
        self.token = issue_token(
            key, sub="fuzzer", name="F", channels=["ops"], now=int(time.time())
        )
        self.ws: ClientConnection = self._join()
        self.answered = 0

    def _join(self) -> ClientConnection:
        ws = connect(self.server.ws_url)
        ws.send(
            json.dumps(
                {"v": 1, "type": "join", "token": self.token, "channel": "ops", "device_id": "fuzz"}
            )
        )
        assert json.loads(ws.recv(5))["type"] == "joined"
        return ws

    def exchange(self, text: str) -> None:
        self.ws.send(text)
        self.ws.send('{"v":1,"type":"ping","id":"sync"}')
        replies = []
        while True:
            msg = json.loads(self.ws.recv(5))
            if msg.get("id") == "sync" and msg["type"] in {"pong", "error"}:
                break  # after a generated valid leave, the sync ping gets not_joined
            replies.append(msg)
        # the sync ping is answered at once (never behind a slower message), so a generated
        # leave's answer may come after its pong: wait for it
        try:
            sent = json.loads(text)
        except ValueError:
            sent = None
        if isinstance(sent, dict) and sent.get("type") == "leave":
            while not any(m["type"] in {"left", "error"} for m in replies):
                replies.append(json.loads(self.ws.recv(5)))
        for msg in replies:
            assert msg["type"] in {"error", "pong", "left", "refreshed", "joined", "offer"}, msg
            if msg["type"] == "error":
                assert not msg["fatal"] or msg["code"].startswith("token")
        if any(m["type"] == "left" for m in replies):  # a generated valid leave: join again
            self.ws.close()
            self.ws = self._join()
        self.answered += 1


def test_ten_thousand_malformed_messages_leave_the_server_serving(
    fuzz_server: ServerProcess,
) -> None:
    client = _Client(fuzz_server)

    @settings(
        max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(MALFORMED)
    def send_one(text: str) -> None:
        client.exchange(text)

    send_one()
    assert client.answered >= 10_000
    client.ws.close()
    # a fresh, valid join still works, and the server process is alive
    fresh = _Client(fuzz_server)
    fresh.ws.close()
    assert fuzz_server.proc is not None and fuzz_server.proc.poll() is None
