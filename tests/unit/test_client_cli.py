"""voice-client's command line: one clear stderr line and a non-zero exit on errors; the
signaling exchange against a scripted fake server (no media plane)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tests.unit.test_client_peer import server_offer
from voice_client.cli import main
from voice_server.signaling import messages as m
from voice_server.signaling.errors import ErrorCode

Script = Callable[[ServerConnection, list[dict[str, Any]]], Awaitable[None]]
ALICE = m.Participant(id="s-alice", sub="u1", name="Alice", device_id="hs-1")
BOB = m.Participant(id="s-bob", sub="u2", name="Bob", device_id="phone-2")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class FakeServer:
    """A scripted signaling server on 127.0.0.1 in its own thread and event loop."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _handler(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        await self.script(ws, self.received)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", 0) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def shut(self) -> None:
        """Stop listening, then close the open connections (called from a script: the server's
        own loop); a later connection is refused."""
        assert self._stop is not None
        self._stop.set()

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        if not self._loop.is_closed():  # not shut by its script already
            with contextlib.suppress(RuntimeError):  # it closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


async def recv_json(ws: ServerConnection) -> dict[str, Any]:
    msg: dict[str, Any] = json.loads(await ws.recv())
    return msg


def joined() -> str:
    return m.encode(
        m.ServerJoined(
            session_id="s-alice",
            resumed=False,
            channel=m.ChannelInfo(name="ops", display_name="Operations"),
            you=ALICE,
            participants=[ALICE, BOB],
            grace_seconds=10,
            token_expires_at=1_900_000_000,
        )
    )


@contextmanager
def fake_server(script: Script) -> Iterator[FakeServer]:
    with FakeServer(script) as server:
        yield server


def args(server: str, *extra: str) -> list[str]:
    return ["--server", server, "--channel", "ops", "--device-id", "hs-1", *extra]


def out_err_lines(capsys: pytest.CaptureFixture[str]) -> tuple[list[str], list[str]]:
    captured = capsys.readouterr()
    return captured.out.splitlines(), captured.err.splitlines()


def test_unreachable_server_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = main(args(f"http://127.0.0.1:{port}", "--token", "t", "--duration", "1"))
    out, err = out_err_lines(capsys)
    assert code == 1
    assert out == []
    assert len(err) == 1
    assert err[0].startswith("voice-client: error: cannot connect to ws://127.0.0.1:")


def test_missing_play_file_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(args("http://127.0.0.1:9", "--token", "t", "--play", str(tmp_path / "no.wav")))
    _, err = out_err_lines(capsys)
    assert code == 2
    assert err == [f"voice-client: error: audio file not found: {tmp_path / 'no.wav'}"]


def test_bad_server_url_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(args("ftp://127.0.0.1", "--token", "t"))
    _, err = out_err_lines(capsys)
    assert code == 2
    assert len(err) == 1 and "bad server URL" in err[0]


def test_record_into_a_missing_directory_is_refused_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(args("http://127.0.0.1:9", "--token", "t", "--record", str(tmp_path / "x/o.wav")))
    _, err = out_err_lines(capsys)
    assert code == 2 and len(err) == 1 and "no such directory" in err[0]


def test_token_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args("http://127.0.0.1:9"))
    assert info.value.code == 2


def test_refused_token_prints_the_servers_error_code_and_exits_3(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def refuse(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        err = m.ServerError(code=ErrorCode.TOKEN_EXPIRED, message="token expired", fatal=True)
        await ws.send(m.encode(err))
        await ws.close(4001)

    with fake_server(refuse) as server:
        code = main(args(server.url, "--token", "secret", "--duration", "5"))
    out, err = out_err_lines(capsys)
    assert code == 3
    assert err == ["voice-client: error: server error token_expired: token expired"]
    assert out == []
    # the token went in the first message, not in the URL
    assert server.paths == ["/ws"]
    assert server.received == [
        {"v": 1, "type": "join", "token": "secret", "channel": "ops", "device_id": "hs-1"}
    ]


def test_server_closing_the_connection_is_an_error_without_reconnect(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def hang_up(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        await ws.send(joined())
        await ws.close()

    with fake_server(hang_up) as server:
        code = main(args(server.url, "--token", "t", "--duration", "5", "--no-reconnect"))
    out, err = out_err_lines(capsys)
    assert code == 1
    assert err == ["voice-client: error: session ended: connection closed by the server"]
    assert json.loads(out[0])["event"] == "joined"


def test_a_dropped_connection_joins_again_with_the_session_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first connection drops right after joining; the client connects again by itself and
    asks to resume its session; the second connection lasts until --duration and leaves."""

    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        await ws.send(joined())
        if len(received) == 1:
            await ws.close()
            return
        received.append(await recv_json(ws))  # leave
        await ws.send(m.encode(m.ServerLeft(reason="left")))

    with fake_server(script) as server:
        started = time.monotonic()
        code = main(args(server.url, "--token", "t", "--duration", "2"))
        elapsed = time.monotonic() - started
    out, err = out_err_lines(capsys)
    assert code == 0, err
    events = [json.loads(line)["event"] for line in out]
    assert events == ["joined", "disconnected", "reconnecting", "joined"]
    joins = [r for r in server.received if r["type"] == "join"]
    assert len(joins) == 2
    assert "session_id" not in joins[0] and joins[1]["session_id"] == "s-alice"
    assert server.received[-1]["type"] == "leave"
    assert elapsed < 4


def test_a_silent_server_is_given_up_after_5_s_and_joined_again_with_the_session_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first connection stays open but the server never answers a ping (a frozen server):
    the client pings every 2 s, drops it 5 s after the last message and joins again; the second
    server answers its pings, so that connection lasts until --duration."""
    joins: list[float] = []

    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        joins.append(time.monotonic())
        await ws.send(joined())
        first = len(joins) == 1
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                msg = json.loads(raw)
                received.append(msg)
                if msg["type"] == "ping" and not first:
                    await ws.send(m.encode(m.ServerPong(id=msg.get("id"), server_time=0.0)))
                elif msg["type"] == "leave":
                    await ws.send(m.encode(m.ServerLeft(reason="left")))
                    return

    with fake_server(script) as server:
        code = main(args(server.url, "--token", "t", "--duration", "9"))
    out, err = out_err_lines(capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out]
    assert [e["event"] for e in events] == ["joined", "disconnected", "reconnecting", "joined"]
    dropped = events[1]
    assert dropped["reason"].startswith("no message from the server for 5.")
    assert dropped["t"] - events[0]["t"] >= 4.99  # not before 5 s of silence
    kinds = [r["type"] for r in server.received]
    first, second = kinds[: kinds.index("join", 1)], kinds[kinds.index("join", 1) :]
    assert first[0] == "join" and first.count("ping") >= 2 and set(first[1:]) == {"ping"}
    assert "ping" in second and second[-1] == "leave"
    rejoin = next(r for r in server.received[1:] if r["type"] == "join")
    assert rejoin["session_id"] == "s-alice"
    assert len(joins) == 2


def test_signaling_exchange_prints_events_and_reports_missing_media(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Join, answer the offer, print talk events, leave on --duration. Nothing answers ICE here,
    so the client must say that media never connected (exit 1) rather than pretend."""
    token_file = tmp_path / "token"
    token_file.write_text("token-1\n")
    dead_port = free_port()

    async def script(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        await ws.send(joined())
        await ws.send(m.encode(m.ServerOffer(sdp=server_offer(port=dead_port))))
        received.append(await recv_json(ws))  # answer
        await ws.send(m.encode(m.ServerTalkStarted(speaker=BOB, slot=1)))
        await ws.send(m.encode(m.ServerSlotBusy(slots=3)))
        await ws.send(m.encode(m.ServerTalkStopped(speaker=BOB, slot=1)))
        token_file.write_text("token-2\n")
        await ws.send(m.encode(m.ServerTokenExpiring(expires_at=1_900_000_030)))
        received.append(await recv_json(ws))  # refresh
        await ws.send(m.encode(m.ServerRefreshed(expires_at=1_900_003_600)))
        received.append(await recv_json(ws))  # leave
        await ws.send(m.encode(m.ServerLeft(reason="left")))

    record = tmp_path / "heard.wav"
    with fake_server(script) as server:
        code = main(
            args(
                server.url,
                "--token-file",
                str(token_file),
                "--duration",
                "1.5",
                "--record",
                str(record),
            )
        )
    out, err = out_err_lines(capsys)
    events = [json.loads(line) for line in out]
    talk = [e for e in events if e["event"] != "media"]
    names = [e["event"] for e in talk]
    assert names == ["joined", "talk_started", "slot_busy", "talk_stopped", "refreshed"]
    assert all(isinstance(e["t"], float | int) for e in events)
    assert talk[1]["speaker"]["name"] == "Bob" and talk[1]["slot"] == 1
    assert [e["state"] for e in events if e["event"] == "media"] == ["connecting", "closed"]
    types = [r["type"] for r in server.received]
    assert types == ["join", "answer", "refresh", "leave"]
    assert server.received[0]["token"] == "token-1"
    assert server.received[2]["token"] == "token-2"
    assert "a=sendonly" in server.received[1]["sdp"]
    m.parse_client_message(json.dumps(server.received[1]))  # the server accepts the answer
    assert code == 1
    assert err == ["voice-client: error: media never connected (ICE/DTLS with the server failed)"]
    assert record.exists()  # the (silent) recording is still written


def test_input_and_play_are_alternatives(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    with pytest.raises(SystemExit) as exc:
        main(args("http://127.0.0.1:9", "--token", "t", "--input", "--play", str(wav)))
    assert exc.value.code == 2
    assert "--input and --play are alternatives" in capsys.readouterr().err


def test_server_and_channel_are_required_unless_listing_devices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--token", "t"])
    assert exc.value.code == 2
    assert "--server, --channel" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--emergency-key", "!!"], "--emergency-key must be one key"),
        (["--mode", "ptt", "--ptt-key", "!", "--emergency-key", "!"], "must differ"),
        (["--reorder-ms", "201"], "--reorder-ms must be within 0..200"),
        (["--reorder-ms", "-1"], "--reorder-ms must be within 0..200"),
    ],
)
def test_emergency_key_and_reorder_mistakes_are_one_line_and_exit_2(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--server", "http://127.0.0.1:1", "--channel", "ops", "--token", "t", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_missing_or_unreadable_ca_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--server", "https://127.0.0.1:9", "--channel", "ops", "--token", "t"]
    assert main([*base, "--ca-file", str(tmp_path / "none.pem")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"voice-client: error: --ca-file: no such file: {tmp_path / 'none.pem'}"
    )
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    assert main([*base, "--ca-file", str(garbage)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"voice-client: error: --ca-file {garbage}:") and "\n" not in err


async def join_and_leave(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
    """A node that works: joined, then left when asked."""
    received.append(await recv_json(ws))
    await ws.send(joined())
    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            msg = json.loads(raw)
            received.append(msg)
            if msg["type"] == "ping":
                await ws.send(m.encode(m.ServerPong(id=msg.get("id"), server_time=0.0)))
            elif msg["type"] == "leave":
                await ws.send(m.encode(m.ServerLeft(reason="left")))
                return


def test_a_node_that_dies_sends_the_client_to_the_next_configured_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Node a stops listening and closes the socket right after the join (as a killed node):
    the try on a is refused, the client prints failover {from a, to b} and joins b."""
    holder: list[FakeServer] = []

    async def dies(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        await ws.send(joined())
        holder[0].shut()  # the listener closes first, then this connection
        await ws.wait_closed()

    with fake_server(dies) as a, fake_server(join_and_leave) as b:
        holder.append(a)
        code = main(args(a.url, "--node", b.url, "--token", "t", "--duration", "3"))
    out, err = out_err_lines(capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out]
    kinds = [e["event"] for e in events]
    assert kinds == ["joined", "disconnected", "failover", "reconnecting", "joined"], kinds
    went = events[2]
    ws_a, ws_b = (f"ws://127.0.0.1:{s.port}/ws" for s in (a, b))
    assert (went["from"], went["to"], went["reason"]) == (ws_a, ws_b, "refused")
    assert [r["type"] for r in a.received] == ["join"]
    assert b.received[0]["type"] == "join" and b.received[-1]["type"] == "leave"


def test_a_drop_goes_back_once_and_cluster_unavailable_moves_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Node a drops the socket after the join (the first try goes back to a) and then refuses
    the join with cluster_unavailable (1013): the next try goes to node b."""

    async def flaky(ws: ServerConnection, received: list[dict[str, Any]]) -> None:
        received.append(await recv_json(ws))
        if len(received) == 1:
            await ws.send(joined())
            await ws.close()
            return
        err = m.ServerError(code=ErrorCode.CLUSTER_UNAVAILABLE, message="try again shortly")
        await ws.send(m.encode(err))
        await ws.close(1013, "try again later")

    with fake_server(flaky) as a, fake_server(join_and_leave) as b:
        code = main(args(a.url, "--node", b.url, "--token", "t", "--duration", "4"))
    out, err = out_err_lines(capsys)
    assert code == 0, err
    events = [json.loads(line) for line in out]
    kinds = [e["event"] for e in events]
    assert kinds == [
        "joined", "disconnected", "reconnecting", "disconnected", "failover", "reconnecting",
        "joined",
    ], kinds  # fmt: skip
    went = events[4]
    assert (went["to"], went["reason"]) == (f"ws://127.0.0.1:{b.port}/ws", "unavailable")
    assert [r["type"] for r in a.received] == ["join", "join"]  # back once, then not again
    assert any("cluster_unavailable" in line for line in err)  # the warning
