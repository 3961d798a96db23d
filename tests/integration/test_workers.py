"""``serve --workers 2``: two media processes, one channel whose members sit on both."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.announcing import boss_of_a
from tests.servers import ServerProcess, running_server
from voice_server.calllog.ogg import read_ogg_opus
from voice_server.sim.group import SimGroup
from voice_server.sim.participant import SimParticipant

pytestmark = pytest.mark.integration
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # round-robin: the members of one channel alternate between the two workers (a server
    # per test: placement starts at worker 0)
    env = {"VOICE_WORKERS_PLACEMENT": "round-robin"}
    with running_server(
        tmp_path_factory.mktemp("workers"), env=env, extra_args=["--workers", "2"]
    ) as srv:
        yield srv


@pytest.fixture
async def group(two_workers: ServerProcess) -> AsyncIterator[SimGroup]:
    token = two_workers.token("sim", "ops")
    sims = SimGroup(two_workers.ws_url, "ops", lambda _i: token, dtx=True)
    try:
        yield sims
    finally:
        await sims.close()


async def _join(group: SimGroup, n: int) -> list[SimParticipant]:
    """``n`` members joined one by one: round-robin alternates them, worker 0 first."""
    return [(await group.add(1))[0] for _ in range(n)]


async def _until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _until_async(probe: Callable[[], Awaitable[str | None]], within: float = 15.0) -> str:
    deadline = time.monotonic() + within
    while (value := await probe()) is None:
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
    return value


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}\{{{re.escape(want)}\}} (\S+)$" if want else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name}{{{want}}} not in /metrics"
    return float(found.group(1))


async def _metrics(server: ServerProcess) -> str:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{server.url}/metrics")).text


async def test_every_listener_hears_every_talker_once_across_two_workers(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    server = two_workers
    # talker a and listener c on worker 0, talker b and listener d on worker 1
    a, b, c, d = await _join(group, 4)
    ports = [p.offer.port for p in (a, b, c, d)]  # type: ignore[union-attr]
    assert ports[0] == ports[2] == server.media_port
    assert ports[1] == ports[3] == server.media_port + 1
    a.talking = b.talking = True
    await _until(lambda: min(a.sent, b.sent) >= 100)
    a.talking = b.talking = False
    sent = {"a": a.sent, "b": b.sent}
    total = sent["a"] + sent["b"]
    await _until(lambda: min(c.received, d.received) >= 0.95 * total)  # in flight: arrived

    async def relayed() -> str | None:  # the workers report their counters every second
        text = await _metrics(server)
        mirrored = _metric(text, "voice_relay_packets_total", worker="0")
        to_owner = _metric(text, "voice_relay_datagrams_sent_total", worker="1", kind="media")
        return text if mirrored >= 0.95 * total and to_owner >= sent["b"] else None

    text = await _until_async(relayed)
    assert min(sent.values()) >= 50
    for listener in (c, d):
        # one stream per talker (two slots), each packet once: no duplicate, (almost) no gap
        assert len(listener.streams) == 2, listener.streams
        assert listener.received >= 0.95 * (sent["a"] + sent["b"])
        for stream in listener.streams.values():
            assert stream.duplicates == 0
            assert stream.lost <= 0.05 * max(sent.values())
        assert listener.srtp_errors == 0
        # talk events come from the channel's one arbiter: one talk_started per talker
        assert listener.messages["talk_started"] == 2
    # each talker hears the other once
    assert len(a.streams) == 1 and len(b.streams) == 1
    assert a.received >= 0.95 * sent["b"] and b.received >= 0.95 * sent["a"]
    # worker 0 owns "ops" (its first member joined there): it arbitrates both talkers, and
    # sends what it forwards once to worker 1 (its one other worker with listeners), never
    # once per listener; worker 1 sends its talker's packets to the owner, once each
    sent_by = {
        (w, kind): _metric(text, "voice_relay_datagrams_sent_total", worker=w, kind=kind)
        for w in ("0", "1")
        for kind in ("media", "mirror")
    }
    assert sent_by[("0", "mirror")] == _metric(text, "voice_relay_packets_total", worker="0")
    # (listener d's DTX frames go to the owner too, as any member's)
    assert sent["b"] <= sent_by[("1", "media")] <= b.sent + d.sent
    assert sent_by[("0", "media")] == sent_by[("1", "mirror")] == 0
    for worker in ("0", "1"):
        assert _metric(text, "voice_media_worker_up", worker=worker) == 1
        assert _metric(text, "voice_relay_drops_total", worker=worker, reason="bad_auth") == 0
        assert _metric(text, "voice_media_worker_cpu_seconds_total", worker=worker) > 0
    # /metrics adds the workers' media counters up as one process shows them, and each's share
    per_worker = [
        _metric(text, "voice_media_worker_packets_out_total", worker=w) for w in ("0", "1")
    ]
    assert min(per_worker) > 0
    assert _metric(text, "voice_media_packets_out_total") == sum(per_worker)
    assert _metric(text, "voice_relay_added_seconds_count") > 0


def _worker_pid(server: ServerProcess, index: int) -> int:
    pids = re.findall(rf"media worker started pid=(\d+) worker={index}\b", server.log())
    assert pids, server.log()
    return int(pids[-1])


async def test_a_worker_killed_mid_talk_is_replaced_and_its_listener_hears_again(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    server = two_workers
    # the talker and the survivor on worker 0, the listener that moves on worker 1
    talker, moved, survivor = await _join(group, 3)
    assert moved.offer.port == server.media_port + 1  # type: ignore[union-attr]
    talker.talking = True
    await _until(lambda: moved.received >= 50 and survivor.received >= 50)
    os.kill(_worker_pid(server, 1), signal.SIGKILL)
    before = moved.received
    # its client gets a new offer on a live worker and hears the talker again in seconds
    await _until(lambda: moved.reoffers == 1 and moved.received >= before + 50, within=10)
    talker.talking = False
    sent = talker.sent
    await _until(lambda: survivor.received >= 0.95 * sent)

    async def restarted() -> str | None:
        text = await _metrics(server)
        return text if _metric(text, "voice_media_worker_up", worker="1") == 1 else None

    text = await _until_async(restarted)
    # the listener on the worker that lived never stopped: (almost) every packet, once
    (stream,) = survivor.streams.values()
    assert survivor.received >= 0.95 * sent and stream.duplicates == 0
    assert _metric(text, "voice_media_worker_restarts_total", worker="1") == 1
    assert _metric(text, "voice_media_worker_up", worker="1") == 1


async def test_a_supervisor_on_another_worker_cuts_in_over_three_talkers(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    staff = server.token("staff", "ops")
    boss = server.token("boss", "ops", role="supervisor")
    # joined one by one: s1, s2, s3 on worker 0 (which owns "ops"), listeners x, y and the
    # supervisor on worker 1
    order = ["s1", "x", "s2", "y", "s3", "sup"]
    group = SimGroup(server.ws_url, "ops", lambda i: boss if order[i] == "sup" else staff, dtx=True)
    try:
        sims = dict(zip(order, await _join(group, len(order)), strict=True))
        assert sims["sup"].offer.port == server.media_port + 1  # type: ignore[union-attr]
        for n, name in enumerate(("s1", "s2", "s3"), start=1):
            sims[name].talking = True  # in turn: s3 is the most recent holder
            await _until(lambda n=n: sims["x"].messages["talk_started"] >= n)  # type: ignore[misc]
        sims["sup"].talking = True
        await _until(lambda: sims["s3"].messages["preempted"] == 1)
        await _until(lambda: sims["y"].messages["talk_started"] >= 4)
        for sim in sims.values():
            sim.talking = False
    finally:
        await group.close()
    # the one arbiter (worker 0) paused the most recent staff holder for the supervisor
    assert [name for name in ("s1", "s2", "s3") if sims[name].messages["preempted"]] == ["s3"]
    for name in ("x", "y"):  # listeners on the other worker: each slot stream, no duplicate
        assert all(s.duplicates == 0 for s in sims[name].streams.values())
        assert len(sims[name].streams) == 3


async def test_a_worker_that_stops_answering_is_declared_dead_and_replaced(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    server = two_workers
    talker, stuck, _ = await _join(group, 3)  # the talker on worker 0, a listener on worker 1
    talker.talking = True
    await _until(lambda: stuck.received >= 50)
    pid = _worker_pid(server, 1)
    os.kill(pid, signal.SIGSTOP)  # alive, silent: no stats, no answers
    try:
        before = stuck.received
        # declared dead after 5 s of silence: killed, its listener moved, the worker restarted
        await _until(lambda: stuck.reoffers == 1 and stuck.received >= before + 50, within=15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    async def restarted() -> str | None:
        text = await _metrics(server)
        return text if _metric(text, "voice_media_worker_up", worker="1") == 1 else None

    text = await _until_async(restarted)
    assert _metric(text, "voice_media_worker_restarts_total", worker="1") == 1
    assert "media worker stopped answering" in server.log()


async def test_the_owner_killed_mid_talk_hands_its_channel_to_a_live_worker(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    server = two_workers
    # worker 0 owns "ops" (first) and has listener a; talker t and listener b on worker 1
    a, t, _, b = await _join(group, 4)
    t.talking = True
    await _until(lambda: a.received >= 50 and b.received >= 50)
    os.kill(_worker_pid(server, 0), signal.SIGKILL)
    before_a, before_b = a.received, b.received
    # the channel is re-owned by worker 1 (a new epoch): b, never moved, hears t again, and a
    # hears it after its new offer
    await _until(lambda: b.received >= before_b + 50, within=10)
    await _until(lambda: a.reoffers == 1 and a.received >= before_a + 50, within=10)
    assert b.reoffers == 0 and t.reoffers == 0
    assert a.offer.port == server.media_port + 1  # type: ignore[union-attr]


async def test_each_burst_is_in_the_call_log_once_whichever_worker_its_talker_is_on(
    two_workers: ServerProcess,
) -> None:
    server = two_workers
    tokens = [server.token(name, "ops") for name in ("ann", "ben", "lis")]
    group = SimGroup(server.ws_url, "ops", lambda i: tokens[i], dtx=True)
    try:
        ann, ben, lis = await _join(group, 3)  # ann on the owner, ben on worker 1
        for n, talker in enumerate((ann, ben), start=1):  # one burst each, in turn
            sent = talker.sent
            talker.talking = True
            await _until(lambda n=n: lis.messages["talk_started"] >= n)  # type: ignore[misc]
            await _until(lambda t=talker, s=sent: t.sent >= s + 60)  # type: ignore[misc]
            talker.talking = False
            await _until(lambda n=n: lis.messages["talk_stopped"] >= n)  # type: ignore[misc]
    finally:
        await group.close()
    spool = server.data_dir / "spool"
    await _until(lambda: not any(spool.glob("*.ogg.part")))
    speakers = sorted(
        read_ogg_opus(p.read_bytes()).tags["VOICE_SPEAKER_ID"] for p in spool.glob("*.ogg")
    )
    assert speakers == ["ann", "ben"]


async def test_an_announcement_plays_on_the_channels_owner_and_reaches_both_workers(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    pytest.importorskip("pyopenjtalk")
    server = two_workers
    x, y = await _join(group, 2)  # one listener on each worker
    token = server.token("boss", "ops", role="supervisor", aud="api")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as c:
        r = await c.post(
            f"{server.url}/api/v1/announcements",
            json={"text": "避難所Aは17時に閉鎖します", "channels": ["ops"]},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        ann = r.json()["id"]

        async def finished() -> str | None:
            body = (await c.get(f"{server.url}/api/v1/announcements/{ann}")).json()
            return None if body["status"] == "playing" else str(body["status"])

        assert await _until_async(finished, within=60) == "done"
    await _until(lambda: x.messages["talk_stopped"] == y.messages["talk_stopped"] == 1)
    for sim in (x, y):
        assert sim.messages["talk_started"] == 1 and sim.received >= 50
        assert all(s.duplicates == 0 for s in sim.streams.values())


async def test_a_schedule_fires_once_with_two_workers(tmp_path: Path) -> None:
    """Once-per-deployment jobs run in the parent (the workers open no database): a one-off
    scheduled announcement fires once and is heard once on both workers."""
    pytest.importorskip("pyopenjtalk")
    env = {"VOICE_WORKERS_PLACEMENT": "round-robin"}
    with running_server(
        tmp_path / "srv", env=env, channels=("a", "b"), extra_args=["--workers", "2"]
    ) as server:
        headers = boss_of_a(server)
        url = f"{server.url}/api/v1/announcements"
        token = server.token("ma", "a")
        group = SimGroup(server.ws_url, "a", lambda _i: token, dtx=True)
        try:
            x, y = await _join(group, 2)
            async with httpx.AsyncClient(headers=headers, timeout=30) as c:
                at = (datetime.now(TOKYO) + timedelta(seconds=6)).replace(tzinfo=None)
                body = {"text": "本日の配布は終了", "channels": ["a"]}
                body["schedule"] = {"at": at.isoformat(timespec="seconds")}  # type: ignore[assignment]
                r = await c.post(url, json=body)
                assert r.status_code == 201, r.text
                once = r.json()["id"]

                async def fired() -> str | None:
                    items = (await c.get(f"{url}/schedules")).json()["items"]
                    fires = next(s for s in items if s["id"] == once)["fires"]
                    done = fires and fires[0]["status"] != "firing"
                    return ",".join(f["status"] for f in fires) if done else None

                assert await _until_async(fired, within=90) == "played"
            # the fire is "played" once it starts: the clip plays on for a few seconds
            await _until(
                lambda: x.messages["talk_stopped"] >= 1 and y.messages["talk_stopped"] >= 1,
                within=30,
            )
        finally:
            await group.close()
    assert x.offer.port != y.offer.port  # type: ignore[union-attr]
    assert x.messages["talk_started"] == y.messages["talk_started"] == 1


# ---------------------------------------------------------------- direct talk and all-calls
# The same scenario with one process and with two (round-robin placement: the n-th session
# joined sits on worker n % 2): what each listener hears of the console, its talk events and the
# call log are the same.
CONSOLE_CHANNELS = ("ops", "hq", "yard")
#: a burst's first copies include up to 40 ms sent before its onset (the router's pre-roll
#: lead): packets counted before the console started talking
PREROLL = 2


def _snap(p: SimParticipant) -> dict[int, tuple[int, int]]:
    return {ssrc: (s.received, s.duplicates) for ssrc, s in p.streams.items()}


def _since(p: SimParticipant, snap: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """Per stream: packets and duplicates received since ``snap`` (streams with packets)."""
    out = {}
    for ssrc, s in p.streams.items():
        got, dup = snap.get(ssrc, (0, 0))
        if s.received > got:
            out[ssrc] = (s.received - got, s.duplicates - dup)
    return out


def _from(p: SimParticipant, sub: str, kind: str) -> list[dict[str, object]]:
    return [
        e
        for e in p.talk_events
        if e["type"] == kind and isinstance(e.get("speaker"), dict) and e["speaker"]["sub"] == sub
    ]


async def _console_talks(
    server: ServerProcess,
    sims: dict[str, SimParticipant],
    reached: list[str],
) -> tuple[int, int, dict[str, dict[int, tuple[int, int]]]]:
    """The console ``con`` talks one burst until every session of ``reached`` got its
    talk_started and stopped: the packets it sent while talking, in all, and what each session
    heard."""
    con = sims["con"]
    snaps = {name: _snap(p) for name, p in sims.items()}
    start = con.sent
    con.talking = True
    await _until(lambda: all(_from(sims[n], "sup", "talk_started") for n in reached), within=30)
    await _until(lambda: con.sent >= start + 100)
    con.talking = False
    sent = con.sent - start
    await _until(lambda: all(_from(sims[n], "sup", "talk_stopped") for n in reached), within=30)
    await _until(
        lambda: all(
            sum(g for g, _ in _since(sims[n], snaps[n]).values()) >= 0.95 * sent for n in reached
        )
    )
    # (the frames sent after the release, DTX, the hangover's, are forwarded too)
    heard = {name: _since(p, snaps[name]) for name, p in sims.items()}
    return sent, con.sent - start, heard


async def _spooled(server: ServerProcess, sub: str) -> list[dict[str, str]]:
    spool = server.data_dir / "spool"
    await _until(lambda: not any(spool.glob("*.ogg.part")))
    tags = [read_ogg_opus(p.read_bytes()).tags for p in sorted(spool.glob("*.ogg"))]
    return [t for t in tags if t["VOICE_SPEAKER_ID"] == sub]


@contextlib.contextmanager
def _console_server(tmp_path: Path, workers: int) -> Iterator[ServerProcess]:
    env = {"VOICE_WORKERS_PLACEMENT": "round-robin"}
    with running_server(
        tmp_path / "srv", env=env, channels=CONSOLE_CHANNELS, extra_args=["--workers", str(workers)]
    ) as server:
        yield server


async def _join_in_order(
    server: ServerProcess, group: SimGroup, order: list[tuple[str, str, str, str]]
) -> dict[str, SimParticipant]:
    """(name, user, channel, role) joined one by one, in this order."""
    sims = {}
    for name, user, channel, role in order:
        token = server.token(user, *CONSOLE_CHANNELS, role=role) if role != "staff" else (
            server.token(user, channel))  # fmt: skip
        p = group.participant(token, channel, name)
        await group.connect(p)
        sims[name] = p
    return sims


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_direct_talk_across_workers_reaches_its_targets_once_and_nobody_else(
    tmp_path: Path, workers: int
) -> None:
    with _console_server(tmp_path, workers) as server:
        group = SimGroup(server.ws_url, "ops", lambda _i: "", dtx=True)
        try:
            # worker 0: con (owns ops), cid (owns hq), yo; worker 1: bea's headset (owns yard),
            # bea's phone. hq's owner is the console's worker (its forward is mirrored to
            # bea's phone with the filter); yard's is the other (a MEDIA hop, then mirrored
            # to yo's worker, where the filter keeps yo out)
            sims = await _join_in_order(
                server,
                group,
                [
                    ("con", "sup", "ops", "supervisor"),
                    ("bea-headset", "bea", "yard", "staff"),
                    ("cid", "cid", "hq", "staff"),
                    ("bea-phone", "bea", "hq", "staff"),
                    ("yo", "yo", "yard", "staff"),
                ],
            )
            if workers == 2:
                ports = {n: p.offer.port for n, p in sims.items()}  # type: ignore[union-attr]
                assert ports["con"] == ports["cid"] == ports["yo"] == server.media_port
                assert ports["bea-phone"] == ports["bea-headset"] == server.media_port + 1
            await sims["con"].send_message(type="talk_target", user="bea", id="t")
            await _until(lambda: sims["con"].messages["talk_target_set"] == 1)
            sent, total, heard = await _console_talks(server, sims, ["bea-phone", "bea-headset"])
        finally:
            await group.close()
        bursts = await _spooled(server, "sup")
    for name in ("bea-phone", "bea-headset"):  # each device: one stream, every packet once
        ((got, dup),) = heard[name].values()
        assert 0.95 * sent <= got <= total + PREROLL and dup == 0, (name, got, sent, total)
        (start,) = _from(sims[name], "sup", "talk_started")
        assert start["kind"] == "direct"
        assert len(_from(sims[name], "sup", "talk_stopped")) == 1
    for name in ("cid", "yo", "con"):  # nobody else hears it, nor its talk events
        assert heard[name] == {} and not _from(sims[name], "sup", "talk_started"), name
    assert len(bursts) == 1, bursts  # one burst, written once
    assert (bursts[0].get("VOICE_KIND"), bursts[0].get("VOICE_TARGET")) == ("direct", "bea")


@pytest.mark.parametrize("workers", [1, 2])
async def test_an_all_call_across_workers_is_heard_once_by_each_listener_and_logged_once(
    tmp_path: Path, workers: int
) -> None:
    with _console_server(tmp_path, workers) as server:
        group = SimGroup(server.ws_url, "ops", lambda _i: "", dtx=True)
        try:
            # worker 0: con (owns ops), y0 (owns yard), h2; worker 1: h1 (owns hq), mon (a
            # console in yard that also hears hq), lo (ops: not called). hq's owner is the
            # other worker (the call is tapped there, from a relayed source); yard's forward
            # is mirrored to mon's worker, where mon hears the call once, through hq
            sims = await _join_in_order(
                server,
                group,
                [
                    ("con", "sup", "ops", "supervisor"),
                    ("h1", "h1", "hq", "staff"),
                    ("y0", "y0", "yard", "staff"),
                    ("mon", "mon", "yard", "supervisor"),
                    ("h2", "h2", "hq", "staff"),
                    ("lo", "lo", "ops", "staff"),
                ],
            )
            if workers == 2:
                ports = {n: p.offer.port for n, p in sims.items()}  # type: ignore[union-attr]
                assert ports["con"] == ports["y0"] == ports["h2"] == server.media_port
                assert ports["h1"] == ports["mon"] == ports["lo"] == server.media_port + 1
            mon, h1 = sims["mon"], sims["h1"]
            await mon.send_message(type="monitor", channels=["hq"], id="m")
            await _until(lambda: mon.messages["monitored"] == 1 and mon.renegotiations == 1)
            # mon hears hq once its answer is in: h1 talks until mon hears it
            before = mon.received
            h1.talking = True
            await _until(lambda: mon.received >= before + 20)
            h1.talking = False
            await _until(lambda: bool(_from(mon, "h1", "talk_stopped")))
            await sims["con"].send_message(type="talk_target", channels=["hq", "yard"], id="t")
            await _until(lambda: sims["con"].messages["talk_target_set"] == 1)
            sent, total, heard = await _console_talks(server, sims, ["h1", "h2", "y0", "mon"])
        finally:
            await group.close()
        bursts = await _spooled(server, "sup")
    for name, channel in (("h1", "hq"), ("h2", "hq"), ("y0", "yard"), ("mon", "hq")):
        # one stream each (mon: hq's, its first channel of the call), every packet once
        ((got, dup),) = heard[name].values()
        assert 0.95 * sent <= got <= total + PREROLL and dup == 0, (name, got, sent, total)
        starts = _from(sims[name], "sup", "talk_started")
        assert {(s["channel"], s["kind"], s["priority"]) for s in starts} >= {
            (channel, "all_call", 2)
        }, (name, starts)
    for name in ("h1", "h2", "y0"):  # one burst, its talk events and ducking as one process
        assert len(_from(sims[name], "sup", "talk_started")) == 1
        ducks = [e["db"] for e in sims[name].talk_events if e["type"] == "duck"]
        assert ducks[-2:][0] != 0 and ducks[-1] == 0, (name, ducks)
    assert heard["lo"] == {} and not _from(sims["lo"], "sup", "talk_started")
    assert len(bursts) == 1, bursts  # tapped once, in hq, naming yard as also reached
    assert (
        bursts[0]["VOICE_CHANNEL"],
        bursts[0].get("VOICE_ALSO"),
        bursts[0].get("VOICE_KIND"),
    ) == (
        "hq",
        "yard",
        "all_call",
    )


async def test_a_frozen_worker_never_blocks_the_parent_for_more_than_one_bounded_wait(
    two_workers: ServerProcess, group: SimGroup
) -> None:
    """Worker 1 SIGSTOPped: the one command sent to it waits at most CALL_TIMEOUT, the next
    fail at once (counted), a new member goes to worker 0 and hears the talker, and the parent
    answers HTTP throughout."""
    server = two_workers
    talker, frozen, _ = await _join(group, 3)  # worker 0, 1, 0: the next would be worker 1
    talker.talking = True
    await _until(lambda: frozen.received >= 20)
    pid = _worker_pid(server, 1)
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:  # the parent's HTTP front, from another thread: its answer times
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                assert c.get(f"{server.url}/healthz").status_code == 200
                latencies.append(time.monotonic() - t0)
                stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        prober.start()
        # commands to the frozen worker: the first waits (bounded), the next fail at once
        for n in range(3):
            await frozen.send_message(type="ice_restart", id=f"r{n}")
        await _until(lambda: frozen.messages["error"] >= 3)
        late = (await group.add(1))[0]  # placed on worker 0, the one answering
        assert late.offer.port == server.media_port  # type: ignore[union-attr]
        before = late.received
        await _until(lambda: late.received >= before + 20)
        text = await _metrics(server)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        stop.set()
        prober.join(30)
        talker.talking = False
    failures = {
        reason: _metric(text, "voice_media_worker_call_failures_total", worker="1", reason=reason)
        for reason in ("timeout", "unresponsive")
    }
    assert failures["timeout"] == 1 and failures["unresponsive"] >= 2, failures
    assert latencies and max(latencies) < 4.0, max(latencies)  # one wait of 1 s, not 5 s each
