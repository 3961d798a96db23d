"""``voice-server bench announce``: how fast a typed announcement is heard, and how fast it is
synthesised.

A server child process and one simulated listener (a real SRTP peer, :mod:`voice_server.sim`)
in its channel. For each of 20 Japanese sentences of 35-45 characters, a supervisor's API token
posts it (``POST /api/v1/announcements``), and ``announce.first_packet_ms`` is the time from
just before the request to the arrival of the first RTP packet at the listener (the
announcement's 0.5 s lead of silence included in the audio, not in this figure). The next
sentence waits for the previous one to end. ``announce.rtf`` is Open JTalk's real-time factor
in this process (synthesis seconds per audio second, warm engine); its first load (dictionary and
voice) is reported apart. Reports the load average before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from voice_server.bench.serverproc import ServerChild
from voice_server.bench.stats import percentiles
from voice_server.identity.tokens import Audience, Role, issue_token
from voice_server.sim.group import SimGroup

__all__ = ["SENTENCES", "format_summary", "run_announce_bench"]

SENTENCES = (
    "避難所Aは本日17時に閉鎖します。避難している方は体育館へ移動してください。",
    "午後2時30分から給水車が中央公園に到着します。容器を持ってお集まりください。",
    "北地区の道路が冠水しています。車での移動は控え、安全な場所で待機してください。",
    "本部から連絡です。各避難所の受付担当者は人数を集計して報告してください。",
    "余震が続いています。倒れやすい家具から離れ、頭を守る姿勢をとってください。",
    "第二避難所では毛布が不足しています。余裕のある避難所は本部へ連絡してください。",
    "午後6時に夕食の配布を始めます。アレルギーのある方は受付でお知らせください。",
    "河川の水位が上昇しています。川沿いの地域の方は直ちに高台へ避難してください。",
    "停電は東地区で続いています。復旧の見込みは明日の午前中と発表されています。",
    "医療班が午後3時に到着します。体調の悪い方は保健室の前でお待ちください。",
    "ペットを連れた方は、南側の専用スペースをご利用ください。案内係が誘導します。",
    "明日の朝7時に職員の交代があります。引き継ぎの内容を記録に残してください。",
    "仮設トイレを校庭の西側に設置しました。夜間は懐中電灯を持って移動してください。",
    "携帯電話の充電は、受付の横の机で行えます。一人三十分まででお願いします。",
    "市役所の窓口は明日から再開します。罹災証明の申請は午前9時から受け付けます。",
    "ボランティアの受付は正門で行います。名札を付けてから作業を始めてください。",
    "消防団が東地区の見回りを行っています。不審な人物を見かけたら連絡してください。",
    "避難所Bの駐車場は満車です。これから来る方は第三駐車場を利用してください。",
    "高齢者の方の健康相談を、午後4時から図書室で行います。ご家族もどうぞ。",
    "本日の会議は午後8時から本部で行います。各班の責任者は出席してください。",
)
SUP = "bench-sup"


def _post(port: int, token: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/announcements",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _status(port: int, token: str, ann_id: str) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/announcements/{ann_id}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return str(json.loads(r.read())["status"])


def synthesis(sentences: tuple[str, ...]) -> dict[str, Any]:
    """Open JTalk here: first load apart, then the real-time factor over the sentences."""
    from voice_server.tts import openjtalk

    t0 = time.perf_counter()
    openjtalk.synthesize("準備")
    first_load = time.perf_counter() - t0
    rtfs = []
    for text in sentences:
        t = time.perf_counter()
        speech = openjtalk.synthesize(text)
        rtfs.append((time.perf_counter() - t) / speech.seconds)
    return {"first_load_s": round(first_load, 3), "rtf": rtfs}


async def _run(data_dir: Path, sentences: tuple[str, ...]) -> dict[str, Any]:
    server = ServerChild(data_dir, "ops")
    token = issue_token(
        load_key(data_dir), sub=SUP, name=SUP, channels=["ops"], role=Role.SUPERVISOR,
        aud=Audience.API, now=int(time.time()),
    )  # fmt: skip
    await server.start()
    group = SimGroup(server.ws_url, "ops", lambda i: server.token(f"l{i}"))
    first: list[float] = []
    try:
        lis = group.participant(server.token("lis"), "ops", "lis")
        await group.connect(lis)
        await asyncio.sleep(1.0)
        load_before = os.getloadavg()
        for text in sentences:
            before = lis.received
            t0 = time.perf_counter()
            out = await asyncio.to_thread(_post, server.port, token, {"text": text})
            while lis.received == before:
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError("no announcement packet reached the listener")
                await asyncio.sleep(0.001)
            first.append((time.perf_counter() - t0) * 1000)
            await _until_played(server.port, token, out["id"])
            await asyncio.sleep(0.8)  # the talk detector's hangover: the slot is free again
        load_after = os.getloadavg()
    finally:
        await group.close()
        await server.stop()
    return {"first": first, "load": (load_before, load_after)}


async def _until_played(port: int, token: str, ann_id: str) -> None:
    for _ in range(600):
        if await asyncio.to_thread(_status, port, token, ann_id) != "playing":
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("an announcement never finished")


def load_key(data_dir: Path) -> bytes:
    from voice_server.identity.keys import load_or_create_key

    return load_or_create_key(data_dir)


def run_announce_bench(count: int = 20) -> dict[str, Any]:
    sentences = SENTENCES[:count]
    synth = synthesis(sentences)
    with tempfile.TemporaryDirectory(prefix="bench-announce-") as tmp:
        run = asyncio.run(_run(Path(tmp), sentences))
    before, after = run["load"]
    return {
        "sentences": len(sentences),
        "characters": [min(len(s) for s in sentences), max(len(s) for s in sentences)],
        "announce": {
            "first_packet_ms": {
                k: round(v, 1) for k, v in percentiles(run["first"], (50, 95)).items()
            },
            "rtf": {k: round(v, 3) for k, v in percentiles(synth["rtf"], (50, 95)).items()},
            "first_load_s": synth["first_load_s"],
        },
        "targets": {"first_packet_ms_p95": 1500},
        "loadavg": {"before": list(before), "after": list(after)},
        "cpus": os.cpu_count(),
    }


def format_summary(result: dict[str, Any]) -> str:
    a = result["announce"]
    load = result["loadavg"]
    return (
        f"{result['sentences']} announcements: typed -> first packet at a listener p50 "
        f"{a['first_packet_ms']['p50']} ms, p95 {a['first_packet_ms']['p95']} ms (target <= "
        f"1500); synthesis RTF p50 {a['rtf']['p50']}, p95 {a['rtf']['p95']} (first load "
        f"{a['first_load_s']} s); load {load['before'][0]:.2f} -> {load['after'][0]:.2f} on "
        f"{result['cpus']} CPUs"
    )
