"""Priority and talk rights with real aiortc peers (`voice-client` processes): three staff hold
the three slots, a supervisor cuts in, a listen-only member hears it and is heard by nobody."""

from __future__ import annotations

import asyncio
import re
import signal
import struct
import time
import wave
from pathlib import Path

import httpx
import pytest

from tests.audio import goertzel_power, read_mono, write_tone
from tests.servers import ServerProcess, running_server
from tests.voiceclients import ClientRun, start_client
from tests.wsclient import Peer

pytestmark = pytest.mark.integration

STAFF = {"s1": 440.0, "s2": 550.0, "s3": 660.0}
SUP_HZ, LIS_HZ = 880.0, 330.0


def power(samples: list[int], rate: int, freq: float, t0: float, t1: float) -> float:
    part = samples[int(t0 * rate) : int(t1 * rate)]
    return goertzel_power(part, rate, freq) / max(1, len(part))


def delayed_tone(path: Path, freq: float, silence: float, seconds: float) -> Path:
    """``silence`` s of silence, then ``seconds`` of tone (played once)."""
    tone = write_tone(path.with_suffix(".tone.wav"), freq, seconds)
    with wave.open(str(tone), "rb") as r:
        frames = r.readframes(r.getnframes())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(struct.pack("<h", 0) * int(48000 * silence) + frames)
    return path


def accounts(server: ServerProcess) -> None:
    for name in (*STAFF, "lis", "peer"):
        server.cli("users", "add", name, "--role", "staff", "--no-password", "--channel", "ops")
    server.cli("users", "add", "sup", "--role", "supervisor", "--no-password", "--channel", "ops")
    server.cli("channels", "assign", "ops", "--listener", "lis")


def client(
    server: ServerProcess,
    tmp: Path,
    name: str,
    role: str = "staff",
    *,
    mode: str = "handsfree",
    **kw: object,
) -> ClientRun:
    token = server.token(name, "ops", role=role)
    args = ["--token", token, "--mode", mode]
    return start_client(server, tmp, name, extra_args=args, **kw)  # type: ignore[arg-type]


def test_a_supervisor_cuts_in_staff_are_ducked_and_a_listener_only_listens(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path / "srv", channels=("ops",)) as server:
        accounts(server)
        lis_tone = write_tone(tmp_path / "lis.wav", LIS_HZ, 2.0)
        # the staff talk (and the listener records) until stopped by a signal once the window
        # after the cut-in is recorded, however long joining the four took on a busy machine;
        # a steady tone stops counting as voice after ~15 s (the gate's noise floor creeps up
        # 3 dB/s), so the looped tones are sent with the gate open
        lis = client(server, tmp_path, "lis", mode="open", play=lis_tone, loop=True, duration=300)
        joined = lis.wait_event("joined")
        assert joined["talk_right"] == "listener"
        lis.wait_event("media", state="connected")
        staff = {}
        for name, hz in STAFF.items():
            tone = write_tone(tmp_path / f"{name}.wav", hz, 2.0)
            staff[name] = client(
                server, tmp_path, name, mode="open", play=tone, loop=True, duration=300
            )
            lis.wait_event("talk_started", timeout=40, speaker=lis_speaker(name))
        sup_file = delayed_tone(tmp_path / "sup.wav", SUP_HZ, 1.0, 4.0)
        sup = client(server, tmp_path, "sup", role="supervisor", play=sup_file, duration=12)
        started = lis.wait_event("talk_started", timeout=40, speaker=lis_speaker("sup"))
        lis.wait_event("duck", timeout=30, db=-15)
        stopped = lis.wait_event("talk_stopped", timeout=40, speaker=lis_speaker("sup"))
        lis.wait_event("duck", timeout=30, db=0)
        time.sleep(3.0)  # the 2 s window after the cut-in, recorded (not a wait for an event)
        metrics = httpx.get(f"{server.url}/metrics").text
        for c in (*staff.values(), lis):
            c.proc.send_signal(signal.SIGTERM)  # the client leaves and writes its recording
        for c in (sup, *staff.values(), lis):
            assert c.wait(90) == 0, c.stderr
        spool = [f.read_bytes() for f in (server.data_dir / "spool").glob("*.ogg*")]
        clips = [f.read_bytes() for f in (server.data_dir / "clips").rglob("*.ogg")]
    assert started["priority"] == 2 and started["kind"] == "speech"
    victims = [n for n, c in staff.items() if c.of("preempted")]
    assert len(victims) == 1, {n: c.of("preempted") for n, c in staff.items()}
    victim = victims[0]
    note = staff[victim].of("preempted")[0]
    assert note["by"]["sub"] == "sup" and note["channel"] == "ops"
    assert note["slot"] == started["slot"]
    # its burst still reaches the call log
    assert any(b"VOICE_SPEAKER_ID=" + victim.encode() in f for f in spool + clips)
    # the listener never talked: its RTP was dropped and counted, no burst, no talk event names
    # it, nobody heard its tone
    dropped = re.search(r'voice_media_drops_total\{reason="listen_only"\} (\d+)', metrics)
    assert dropped and int(dropped.group(1)) > 50, metrics
    assert not any(b"VOICE_SPEAKER_ID=lis" in f for f in spool + clips)
    for c in (*staff.values(), sup):
        assert not [e for e in c.of("talk_started") if e["speaker"]["sub"] == "lis"]
        samples, rate = read_mono(c.record)  # type: ignore[arg-type]
        total = sum(power(samples, rate, hz, 1.0, len(samples) / rate) for hz in STAFF.values())
        assert power(samples, rate, LIS_HZ, 1.0, len(samples) / rate) < 0.01 * total
    # the listener heard the supervisor; the others were ducked >= 10 dB while it spoke
    samples, rate = read_mono(lis.record)  # type: ignore[arg-type]
    t_on, t_off = started["t"], stopped["t"]
    assert power(samples, rate, SUP_HZ, t_on + 0.3, t_off - 0.8) > 100 * max(
        power(samples, rate, SUP_HZ, t_on - 2.0, t_on - 0.2), 1.0
    )
    for name, hz in STAFF.items():
        if name == victim:
            continue
        before = power(samples, rate, hz, t_on - 2.0, t_on - 0.2)
        during = power(samples, rate, hz, t_on + 0.3, t_off - 0.8)
        after = power(samples, rate, hz, t_off + 0.3, t_off + 2.0)
        assert during < 0.1 * before, (name, before, during)  # >= 10 dB lower
        assert after > 0.5 * before, (name, before, after)  # and back


def lis_speaker(name: str) -> dict[str, object]:
    """Match a talk event's speaker by sub (wait_event compares whole fields)."""
    return _Sub(name)  # type: ignore[return-value]


class _Sub(dict):  # type: ignore[type-arg]
    def __init__(self, sub: str) -> None:
        super().__init__()
        self.sub = sub

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and other.get("sub") == self.sub

    __hash__ = None  # type: ignore[assignment]


def test_levels_and_talk_rights_reach_signaling_and_forged_levels_are_ignored(
    tmp_path: Path,
) -> None:
    async def go(server: ServerProcess) -> None:
        def token(name: str, role: str = "staff") -> str:
            return server.token(name, "ops", "hq", role=role)

        sato = await Peer.connect(server.ws_url)
        joined = await sato.join(token("s1"), priority=3)  # forged: ignored
        assert joined["priority"] == 1 and joined["talk_right"] == "talker"
        await sato.send(type="route", sends=["ops", "hq"], hears=["ops"], id="r1", priority=3)
        err = await sato.expect("error", timeout=20, id="r1")
        assert err["code"] == "not_supervisor"
        lis = await Peer.connect(server.ws_url)
        joined = await lis.join(token("lis"), device_id="dev-2")
        assert joined["talk_right"] == "listener"
        await lis.send(type="route", sends=["ops"], hears=["ops"], id="r2")
        assert (await lis.expect("error", timeout=20, id="r2"))["code"] == "listen_only"
        # an admin's change reaches the live session (the directory is re-read every second)
        await asyncio.to_thread(server.cli, "channels", "unassign", "ops", "--listener", "lis")
        now = await lis.expect("talk_right", timeout=20)
        assert now == {"v": 1, "type": "talk_right", "talk_right": "talker", "priority": 1}
        await asyncio.to_thread(server.cli, "channels", "set", "ops", "--priority", "s1=2")
        assert (await sato.expect("talk_right", timeout=20))["priority"] == 2
        raised = await Peer.connect(server.ws_url)  # the channel raised "peer" to level 2
        assert (await raised.join(token("peer"), device_id="dev-3"))["priority"] == 2
        boss = await Peer.connect(server.ws_url)
        assert (await boss.join(token("sup", "supervisor"), device_id="dev-4"))["priority"] == 2
        await boss.send(type="route", sends=["ops", "hq"], hears=["ops"], id="r3")
        assert (await boss.expect("routed", timeout=20, id="r3"))["sends"] == ["ops", "hq"]
        for p in (sato, lis, raised, boss):
            await p.close()

    with running_server(tmp_path / "srv", channels=("ops", "hq")) as server:
        accounts(server)
        for name in ("s1", "peer", "sup"):
            server.cli("channels", "assign", "hq", "--member", name)
        server.cli("channels", "set", "ops", "--priority", "peer=2")
        asyncio.run(go(server))
