"""The dispatcher console with a real server: monitor/unmonitor answered on the same peer
connection with a slots map, presence (``monitoring: true``), the console's error codes, and
real aiortc peers (`voice-client --console`) hearing a different tone from each channel while
its own talk reaches only the selected channel."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.accounts import Role, org_server, token
from tests.audio import goertzel_power, read_mono, write_tone
from tests.integration.test_routes import BLOCK, longest_quiet_run, loud_blocks
from tests.servers import ServerProcess, running_server
from tests.voiceclients import ClientRun, start_client
from tests.wsclient import Peer
from voice_server.calllog.ogg import read_ogg_opus

pytestmark = pytest.mark.integration

CHANNELS = ("ops", "hq", "yard")
TONES = {"ops": 440.0, "hq": 660.0, "yard": 880.0}
CONSOLE_TONE = 1200.0


def sup_token(server: ServerProcess, *channels: str) -> str:
    return server.token("sup", *channels, role="supervisor")


def test_console_signaling_presence_and_errors(tmp_path: Path) -> None:
    extra = tuple(f"c{i}" for i in range(1, 8))  # ops + hq + 7 = 9 channels: one over the cap
    with running_server(tmp_path / "srv", channels=(*CHANNELS, "secret", *extra)) as server:
        asyncio.run(_signaling(server, extra))


async def _signaling(server: ServerProcess, extra: tuple[str, ...]) -> None:
    url = server.ws_url
    bea = await Peer.connect(url)
    await bea.join(server.token("bea", "hq"), channel="hq", device_id="bea-1")
    con = await Peer.connect(url)
    await con.join(sup_token(server, *CHANNELS, *extra), channel="ops", device_id="console")
    await con.expect("offer")

    # monitor: the console's channels now, in m-line order; hq's members see it arrive
    await con.send(type="monitor", channels=["hq", "yard"], id="m1")
    mon = await con.expect("monitored", id="m1")
    assert mon["channels"] == ["ops", "hq", "yard"]
    seen = await bea.expect("participant_joined")
    assert seen["participant"]["sub"] == "sup" and seen["participant"]["monitoring"] is True
    # a member joining yard later finds it among the participants
    cid = await Peer.connect(url)
    joined = await cid.join(server.token("cid", "yard"), channel="yard", device_id="cid-1")
    monitors = [p for p in joined["participants"] if p["monitoring"]]
    assert [p["sub"] for p in monitors] == ["sup"]

    # errors: stable codes, nothing changed
    async def error(code: str, rid: str, **msg: Any) -> None:
        await con.send(id=rid, **msg)
        err = await con.expect("error", id=rid)
        assert err["code"] == code, err
        assert err["fatal"] is False

    await error("channel_not_supervised", "e1", type="monitor", channels=["secret"])
    await error("too_many_channels", "e2", type="monitor", channels=list(extra))
    await error("invalid_field", "e3", type="monitor", channels=[f"x{i}" for i in range(9)])
    await error("invalid_field", "e4", type="monitor", channels="hq")
    await error("empty_target", "e5", type="talk_target", channels=[])
    await error("empty_target", "e6", type="talk_target")
    await error("target_offline", "e7", type="talk_target", user="nobody")
    await error("channel_not_supervised", "e8", type="talk_target", channels=["secret"])
    await error("invalid_field", "e9", type="talk_target", channels=["hq"], user="bea")
    await con.send(type="monitor", channels=["hq"], id="m2")
    assert (await con.expect("monitored", id="m2"))["channels"] == ["ops", "hq", "yard"]

    # a staff member has no console
    await bea.send(type="monitor", channels=["hq"], id="s1")
    assert (await bea.expect("error", id="s1"))["code"] == "channel_not_supervised"

    # talk targets: one channel, an all-call, one person (direct)
    await con.send(type="talk_target", channels=["hq"], id="t1")
    t1 = await con.expect("talk_target_set", id="t1")
    assert (t1["channels"], t1["kind"], t1["user"]) == (["hq"], "speech", None)
    await con.send(type="talk_target", channels=["hq", "yard"], id="t2")
    assert (await con.expect("talk_target_set", id="t2"))["kind"] == "all_call"
    await con.send(type="talk_target", user="bea", id="t3")
    t3 = await con.expect("talk_target_set", id="t3")
    assert (t3["channels"], t3["kind"], t3["user"]) == (["hq"], "direct", "bea")

    # unmonitor: hq's members see it go; the console keeps its own channel
    await con.send(type="unmonitor", channels=["hq"], id="u1")
    assert (await con.expect("monitored", id="u1"))["channels"] == ["ops", "yard"]
    gone = await bea.expect("participant_left")
    assert gone["participant"]["sub"] == "sup" and gone["reason"] == "unmonitored"
    await error("invalid_field", "u2", type="unmonitor", channels=["ops"])

    # the console leaves: yard's members see the monitor go
    await con.send(type="leave", id="bye")
    await con.expect("left", id="bye")
    left = await cid.expect("participant_left")
    assert left["participant"]["sub"] == "sup" and left["participant"]["monitoring"] is True
    for p in (bea, con, cid):
        await p.close()


def power(samples: list[int], rate: int, freq: float, t0: float, t1: float) -> float:
    part = samples[int(t0 * rate) : int(t1 * rate)]
    return goertzel_power(part, rate, freq) / max(1, len(part))


def _console(server: ServerProcess, tmp_path: Path, *args: str, **kw: Any) -> ClientRun:
    token = sup_token(server, *CHANNELS)
    return start_client(
        server,
        tmp_path,
        "sup",
        extra_args=["--console", "--monitor", "hq", "--monitor", "yard", "--token", token,
                    *args],
        **kw,
    )  # fmt: skip


def test_console_hears_each_channel_and_talks_only_into_its_target(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv", channels=CHANNELS) as server:
        talkers = {
            ch: start_client(
                server, tmp_path, f"in-{ch}", channel=ch, duration=30, loop=True,
                play=write_tone(tmp_path / f"{ch}.wav", TONES[ch], 2.0),
                extra_args=["--mode", "open"],  # a steady tone: no gate to close after ~15 s
            )
            for ch in CHANNELS
        }  # fmt: skip
        for c in talkers.values():
            c.wait_event("media", state="connected", timeout=60)
        console = _console(
            server,
            tmp_path,
            "--mode", "ptt", "--talk-target", "hq",
            play=write_tone(tmp_path / "console.wav", CONSOLE_TONE, 2.0), loop=True, duration=20,
        )  # fmt: skip
        slots = console.wait_event("slots_map", timeout=60)
        console.wait_event("talk_target_set", timeout=60)
        hq_talk = console.wait_event("talk_started", timeout=60, channel="hq")
        yard_talk = console.wait_event("talk_started", timeout=60, channel="yard")
        assert console.wait(90) == 0, console.stderr
        for c in talkers.values():
            c.proc.terminate()
            c.wait(30)
    # one peer connection: the renegotiation appended hq's and yard's slots (mids 4..9)
    mapped = slots["slots_map"]
    assert [mapped[str(m)]["channel"] for m in range(1, 10)] == ["ops"] * 3 + ["hq"] * 3 + [
        "yard"
    ] * 3
    assert len(console.of("media")) >= 1 and not [e for e in console.of("media")
                                                  if e["state"] == "failed"]  # fmt: skip
    # talk events carry the session's slot: hq's slot 1 is mid 4, yard's mid 7
    assert mapped[str(hq_talk["slot"])]["channel"] == "hq"
    assert mapped[str(yard_talk["slot"])]["channel"] == "yard"
    samples, rate = read_mono(console.record)  # type: ignore[arg-type]
    # ops (its own channel) went on through the renegotiation that added hq and yard: no gap
    # (the console asks as soon as media is up, so ops may start just before or just after it)
    loud = loud_blocks(samples)
    first = loud.index(True)
    renegotiated = console.of("renegotiated")[0]["t"]
    assert longest_quiet_run(loud, first, int((renegotiated + 3.0) * rate / BLOCK)) <= 2
    t0, t1 = max(hq_talk["t"], yard_talk["t"]) + 1.0, console.of("talk_started")[-1]["t"] + 4.0
    heard = {ch: power(samples, rate, f, t0, t1) for ch, f in TONES.items()}
    noise = power(samples, rate, 1500.0, t0, t1)
    for ch, p in heard.items():
        assert p > 20 * max(noise, 1.0), (ch, heard, noise)
    # the console's own talk reached hq and no other channel
    got, starts = {}, {}
    for ch, c in talkers.items():
        s, r = read_mono(c.record)  # type: ignore[arg-type]
        got[ch] = power(s, r, CONSOLE_TONE, 0, len(s) / r)
        starts[ch] = [e for e in c.of("talk_started") if e["speaker"]["sub"] == "sup"]
    assert starts["hq"] and starts["hq"][0]["kind"] == "speech"
    assert starts["ops"] == [] and starts["yard"] == []
    assert got["hq"] > 100 * max(got["ops"], got["yard"], 1.0), got


def _listeners(
    server: ServerProcess, tmp_path: Path, who: dict[str, tuple[str, str]]
) -> dict[str, ClientRun]:
    """Listening voice-clients: key -> (user, channel); device ids are the keys."""
    out = {
        key: start_client(server, tmp_path, key, channel=ch, duration=60, device_id=key,
                          extra_args=["--token", server.token(user, ch)])
        for key, (user, ch) in who.items()
    }  # fmt: skip
    for c in out.values():
        c.wait_event("media", state="connected", timeout=60)
    return out


def _console_bursts(server: ServerProcess) -> list[dict[str, str]]:
    """The tags of the console's closed spool files (waits until none is still being written)."""
    spool = server.data_dir / "spool"
    deadline = time.monotonic() + 30
    while any(spool.glob("*.ogg.part")) and time.monotonic() < deadline:
        time.sleep(0.1)
    tags = [read_ogg_opus(p.read_bytes()).tags for p in sorted(spool.glob("*.ogg"))]
    return [t for t in tags if t["VOICE_SPEAKER_ID"] == "sup"]


def _heard_console(c: ClientRun) -> tuple[float, list[dict[str, Any]]]:
    c.proc.terminate()
    c.wait(30)
    s, r = read_mono(c.record)  # type: ignore[arg-type]
    starts = [e for e in c.of("talk_started") if e["speaker"]["sub"] == "sup"]
    return power(s, r, CONSOLE_TONE, 0, len(s) / r), starts


def _talk_from_console(
    tmp_path: Path, who: dict[str, tuple[str, str]], args: list[str], kind: str, reached: list[str]
) -> tuple[dict[str, Any], dict[str, tuple[float, list[dict[str, Any]]]], list[dict[str, str]]]:
    """Listeners ``who``, then a push-to-talk console (``args``: its target) talking a tone until
    those ``reached`` got its ``talk_started`` of ``kind``: its ``talk_target_set``, what each
    listener heard of it, and the tags of its spool files."""
    with running_server(tmp_path / "srv", channels=CHANNELS) as server:
        listeners = _listeners(server, tmp_path, who)
        console = _console(
            server, tmp_path, "--mode", "ptt", *args,
            play=write_tone(tmp_path / "console.wav", CONSOLE_TONE, 2.0), loop=True, duration=12,
        )  # fmt: skip
        target = console.wait_event("talk_target_set", timeout=60)
        for key in reached:
            listeners[key].wait_event("talk_started", timeout=60, kind=kind)
        assert console.wait(90) == 0, console.stderr
        heard = {key: _heard_console(c) for key, c in listeners.items()}
        return target, heard, _console_bursts(server)


def test_an_all_call_reaches_every_target_channel_and_no_other_as_one_burst(
    tmp_path: Path,
) -> None:
    who = {"lo": ("lo", "ops"), "cid": ("cid", "hq"), "yo": ("yo", "yard")}
    args = ["--talk-target", "hq", "--talk-target", "yard"]
    target, heard, bursts = _talk_from_console(tmp_path, who, args, "all_call", ["cid", "yo"])
    assert (target["channels"], target["kind"]) == (["hq", "yard"], "all_call")
    for key in ("cid", "yo"):
        starts = heard[key][1]
        assert starts and {e["priority"] for e in starts} == {2}, (key, starts)
    got_ops, starts_ops = heard["lo"]
    assert starts_ops == []
    assert min(heard["cid"][0], heard["yo"][0]) > 100 * max(got_ops, 1.0), heard
    # one burst in the call log's spool, tapped in hq, naming yard as also reached
    assert bursts and all(
        (t["VOICE_CHANNEL"], t.get("VOICE_ALSO"), t.get("VOICE_KIND")) == ("hq", "yard", "all_call")
        for t in bursts
    ), bursts


def test_a_direct_talk_reaches_every_device_of_one_person_only(tmp_path: Path) -> None:
    who = {"bea-phone": ("bea", "hq"), "bea-headset": ("bea", "yard"), "cid": ("cid", "hq")}
    devices = ["bea-phone", "bea-headset"]
    target, heard, bursts = _talk_from_console(
        tmp_path, who, ["--talk-to-user", "bea"], "direct", devices
    )
    assert (target["user"], target["kind"], target["channels"]) == ("bea", "direct", ["hq", "yard"])
    got_cid, starts_cid = heard["cid"]
    assert starts_cid == []
    assert min(heard["bea-phone"][0], heard["bea-headset"][0]) > 100 * max(got_cid, 1.0), heard
    assert bursts and all(
        (t.get("VOICE_KIND"), t.get("VOICE_TARGET")) == ("direct", "bea") for t in bursts
    ), bursts


def test_a_console_stops_hearing_a_channel_its_user_no_longer_supervises(tmp_path: Path) -> None:
    with org_server(tmp_path / "org") as server:
        server.cli("channels", "assign", "hq", "--supervisor", "boss")
        asyncio.run(_revoked(server))


async def _revoked(server: ServerProcess) -> None:
    mori = await Peer.connect(server.ws_url)
    await mori.join(token(server, "mori", "hq"), channel="hq", device_id="mori-1")
    con = await Peer.connect(server.ws_url)
    await con.join(token(server, "boss", "ops", "hq", role=Role.SUPERVISOR), device_id="desk")
    await con.send(type="monitor", channels=["hq"], id="m")
    assert (await con.expect("monitored", id="m"))["channels"] == ["ops", "hq"]
    await con.send(type="talk_target", channels=["ops", "hq"], id="t")
    assert (await con.expect("talk_target_set", id="t"))["kind"] == "all_call"
    await mori.expect("participant_joined")
    await asyncio.to_thread(server.cli, "channels", "unassign", "hq", "--supervisor", "boss")
    err = await con.expect("error", timeout=30)
    assert err["code"] == "channel_not_supervised" and not err["fatal"]
    assert (await con.expect("monitored", timeout=30))["channels"] == ["ops"]
    gone = await mori.expect("participant_left", timeout=30)
    assert gone["participant"]["sub"] == "boss" and gone["reason"] == "unmonitored"
    await con.send(type="monitor", channels=["hq"], id="again")
    assert (await con.expect("error", id="again"))["code"] == "channel_not_supervised"
    for p in (mori, con):
        await p.close()
