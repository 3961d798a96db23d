"""``voice-server bench transcribe --engine whisper --language ja --json FILE``: Japanese figures.

Material: 30 generated municipal sentences (:mod:`voice_server.bench.japanese`) spoken by Open
JTalk (:mod:`voice_server.tts.openjtalk`), each encoded as a client sends it (20 ms Opus, 24
kbps), and a fixed phrase list of ≤ 50 terms holding at most half of each sentence's content
words. Phases:

1. **Direct.** Each sentence's packets decoded in this process as the pipeline decodes a burst
   (:func:`~voice_server.transcribe.direct.recognize_packets`), without the list
   (``cer.direct``) and with it (``cer.with_phrases``; ``cer_kana.with_phrases`` compares
   Open JTalk's katakana readings, so a kanji choice such as 避難所/批難所 is not an error).
   ``rtf`` = decoding wall time / audio time, ``cpu_s_per_burst`` = CPU seconds per sentence
   (this process, all threads), without the list.
2. **Pipeline.** A real server and a real sidecar (``--cpu-priority normal``); an aiortc client
   speaks the 30 sentences into a channel at 0 % loss. ``cer.pipeline`` = CER of the call log's
   utterances (in order, joined) against the references joined; ``fidelity.loss0`` = 1 − CER of
   the call log's text against a direct decoding of each utterance's own clip (1.0: the pipeline
   adds nothing); ``commit_latency_ms`` (burst end → committed) for this one talker.
3. **Capacity.** The bench plays the server's end of the link to a second sidecar and streams
   N talkers at a 20 % duty cycle (a sentence, then four times as long silent; staggered) for
   ``--capacity-seconds`` per step. A step holds when every burst is committed within 30 s of
   the step's end and the backlog (ended, not yet committed) in the last third of the step is
   not above the first third's by more than one. Steps stop at the first that does not hold;
   ``realtime_talkers`` is the last that held (0 is an honest answer).

CER: characters after NFKC with punctuation and spaces removed
(:func:`~voice_server.transcribe.errorrate.char_score`). The figures describe a synthetic voice
(clear, one speaker, no noise) and the model given: see README for what they mean and how a city
measures its own recordings (``voice-server asr-eval``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

from voice_server.bench.httpsync import HttpError, get_text
from voice_server.bench.japanese import phrase_list, sentences
from voice_server.bench.stats import percentile
from voice_server.bench.transcribe_speech import opus_packets
from voice_server.transcribe.errorrate import char_score

__all__ = ["main"]

N_SENTENCES = 30
DUTY = 0.2


def _score(pairs: list[tuple[str, str]]) -> float:
    errors = chars = 0
    for ref, hyp in pairs:
        s = char_score(ref, hyp)
        errors, chars = errors + s.char_errors, chars + s.chars
    return round(errors / chars, 4) if chars else 0.0


def _direct(factory: Any, material: list[Any], packets: list[list[bytes]], terms: list[str]) -> Any:
    from voice_server.transcribe.direct import recognize_packets
    from voice_server.tts.openjtalk import kana

    plain: list[str] = []
    biased: list[str] = []
    wall = cpu = 0.0
    for p in packets:
        t0, c0 = time.monotonic(), time.process_time()
        plain.append(recognize_packets(factory, p).text)
        wall += time.monotonic() - t0
        cpu += time.process_time() - c0
        biased.append(recognize_packets(factory, p, terms).text)
    audio = sum(len(p) for p in packets) * 0.02
    refs = [s.reference for s in material]
    return {
        "cer.direct": _score(list(zip(refs, plain, strict=True))),
        "cer.with_phrases": _score(list(zip(refs, biased, strict=True))),
        "cer_kana.with_phrases": _score(
            [(kana(r), kana(h) if h else "") for r, h in zip(refs, biased, strict=True)]
        ),
        "rtf": round(wall / audio, 3),
        "cpu_s_per_burst": round(cpu / len(packets), 2),
        "texts": [
            {"reference": r, "direct": a, "with_phrases": b}
            for r, a, b in zip(refs, plain, biased, strict=True)
        ],
    }


def _wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(pcm)
    return path


def _pipeline(
    args: argparse.Namespace, work: Path, factory: Any, material: list[Any], pcms: list[bytes]
) -> dict[str, Any]:
    from voice_server.bench.transcribe_run import cli as _cli
    from voice_server.bench.transcribe_run import free_port as _free_port
    from voice_server.bench.transcribe_run import process as _process
    from voice_server.bench.transcribe_run import run_utterances as _run_utterances
    from voice_server.bench.transcribe_run import talk as _talk
    from voice_server.calllog.sqlite import SqliteCallLog
    from voice_server.identity.keys import load_or_create_key
    from voice_server.identity.tokens import issue_token
    from voice_server.store.database import Database
    from voice_server.transcribe.direct import recognize_file

    data = work / "data"
    gap = b"\0\0" * int(48000 * 2.0)
    wav = _wav(work / "speech.wav", b"".join(p + gap for p in pcms))
    seconds = len(b"".join(p + gap for p in pcms)) / 96000
    import subprocess

    subprocess.run(_cli("channels", "add", "bench", "--data-dir", str(data)), check=True)
    key = load_or_create_key(data)
    port, media = _free_port(), _free_port(socket.SOCK_DGRAM)
    url = f"http://127.0.0.1:{port}"
    serve = _cli("serve", "--data-dir", str(data), "--port", str(port), "--media-port", str(media))
    side = _cli(
        "transcriber", "--server", url, "--data-dir", str(data), "--engine", "whisper",
        "--model", str(factory.path), "--language", factory.language, "--cpu-priority", "normal",
    )  # fmt: skip
    with _process(serve, work / "server.log"), _process(side, work / "sidecar.log"):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(HttpError):
                if "voice_transcription_link_up 1" in get_text(f"{url}/metrics")[1]:
                    break
            time.sleep(0.5)
        else:
            raise SystemExit("bench transcribe: the whisper sidecar did not link")
        log = SqliteCallLog(Database(data / "voice.db"))
        sub = "bench-ja"
        token = issue_token(key, sub=sub, name=sub, channels=["bench"], now=int(time.time()))
        _talk(url, token, sub, wav, seconds + 2.5, 0.0, args.seed)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            spool = list((data / "spool").glob("*.ogg*"))
            if _run_utterances(log, sub) and not spool:
                break
            time.sleep(1.0)
        time.sleep(1.0)
        utterances = _run_utterances(log, sub)
        gaps = log.gaps(channels=None, since_ms=None, until_ms=None)
        clips = [data / u.clip for u in utterances if u.clip]
        direct = "".join(recognize_file(factory, c).text for c in clips)
        pipeline = "".join(u.text for u in utterances)
        lat = log.commit_latencies_ms(0)
    reference = "".join(s.reference for s in material)
    return {
        "cer.pipeline": _score([(reference, pipeline)]),
        "fidelity.loss0": round(max(0.0, 1 - char_score(direct, pipeline).cer), 4),
        "commit_latency_ms": {
            "p50": percentile(lat, 50) if lat else None,
            "p95": percentile(lat, 95) if lat else None,
            "max": max(lat) if lat else None,
            "n": len(lat),
        },
        "pipeline": {
            "utterances": len(utterances),
            "gaps": sorted(g.reason for g in gaps),
            "text": pipeline,
        },
    }


async def _duty_step(link: Any, bursts: list[list[bytes]], n: int, seconds: float) -> Any:
    """N talkers at a 20 % duty cycle for ``seconds``: backlog samples and whether it held."""
    from voice_server.calllog.model import new_burst_id
    from voice_server.media.rtp import build_rtp
    from voice_server.transcribe.protocol import dumps, pack_packets

    ws = link.ws
    mean_len = sum(len(b) for b in bursts) / len(bursts) * 0.02
    period = mean_len / DUTY
    next_start = [i * period / n for i in range(n)]
    # (talker, burst no) -> (burst id, packets, packets sent)
    active: dict[tuple[int, int], tuple[str, list[bytes], int]] = {}
    ended: dict[str, float] = {}
    samples: list[tuple[float, int]] = []
    number, pick = 0, 0
    t0 = time.monotonic()
    tick = 0
    while True:
        now = time.monotonic() - t0
        if now < seconds:
            for i in range(n):
                if now >= next_start[i] and not any(k[0] == i for k in active):
                    number += 1
                    burst = bursts[pick % len(bursts)]
                    pick += 1
                    ms = int(time.time() * 1000)
                    bid = new_burst_id(ms)
                    await ws.send(
                        dumps({
                            "type": "burst_start", "burst": number, "id": bid, "channel": "bench",
                            "speaker_id": f"talker-{i}", "speaker_name": f"Talker {i}",
                            "start_ms": ms,
                        })
                    )  # fmt: skip
                    active[(i, number)] = (bid, burst, 0)
                    next_start[i] += period
        elif not active:
            break
        records = []
        for key, (bid, packets, sent) in list(active.items()):
            no = key[1]
            records.append(
                (no, build_rtp(payload_type=111, seq=sent, timestamp=sent * 960, ssrc=no,
                               payload=packets[sent]))
            )  # fmt: skip
            if sent + 1 >= len(packets):
                del active[key]
                ended[bid] = time.monotonic()
                await ws.send(
                    dumps({"type": "burst_end", "burst": no, "id": bid, "complete": True,
                           "ended_ms": int(time.time() * 1000)})
                )  # fmt: skip
            else:
                active[key] = (bid, packets, sent + 1)
        if records:
            await ws.send(pack_packets(records))
        tick += 1
        if tick % 50 == 0:
            backlog = sum(1 for b in ended if b not in link.committed)
            samples.append((round(time.monotonic() - t0, 1), backlog))
        delay = t0 + tick * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    drain_deadline = time.monotonic() + 30
    while not all(b in link.committed for b in ended):  # the link sets `changed` per commit
        link.changed.clear()
        remaining = drain_deadline - time.monotonic()
        if remaining <= 0:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(link.changed.wait(), remaining)
    committed = [b for b in ended if b in link.committed]
    lat = [(link.committed[b] - ended[b]) * 1000 for b in committed]
    third = max(1, len(samples) // 3)
    first = sum(s for _, s in samples[:third]) / third
    last = sum(s for _, s in samples[-third:]) / third
    held = len(committed) == len(ended) and last <= first + 1
    return {
        "talkers": n,
        "bursts": len(ended),
        "committed": len(committed),
        "backlog_first_third": round(first, 2),
        "backlog_last_third": round(last, 2),
        "latency_ms_p95": round(percentile(lat, 95), 1) if lat else None,
        "held": held,
    }


async def _capacity(
    args: argparse.Namespace, work: Path, factory: Any, bursts: list[list[bytes]]
) -> dict[str, Any]:
    import subprocess

    from voice_server.bench.procstat import CpuMeter, read_machine_busy_seconds
    from voice_server.bench.transcribe_replay import ReplayLink
    from voice_server.bench.transcribe_run import cli as _cli
    from voice_server.bench.transcribe_run import free_port as _free_port
    from voice_server.identity.keys import load_or_create_key

    data = work / "data"
    key = load_or_create_key(data)
    port = _free_port()
    link = ReplayLink(key)
    from websockets.asyncio.server import serve

    side = _cli(
        "transcriber", "--server", f"http://127.0.0.1:{port}", "--data-dir", str(data),
        "--engine", "whisper", "--model", str(factory.path), "--language", factory.language,
        "--cpu-priority", "normal",
    )  # fmt: skip
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    results: list[dict[str, Any]] = []
    best = 0

    def start() -> subprocess.Popen[bytes]:
        with (work / "sidecar-capacity.log").open("ab") as out:
            return subprocess.Popen(side, stdout=out, stderr=subprocess.STDOUT)

    async with serve(link.handler, "127.0.0.1", port, max_size=1 << 20):
        proc = start()
        try:
            await asyncio.wait_for(link.connected.wait(), 120)
            for n in steps:
                meter = CpuMeter(proc.pid)
                busy0 = read_machine_busy_seconds()
                meter.start()
                result = await _duty_step(link, bursts, n, args.capacity_seconds)
                reading = meter.stop()
                busy = read_machine_busy_seconds() - busy0
                result["sidecar_cores"] = round(reading.cores, 3)
                result["sidecar_cpu_s_per_burst"] = (
                    round(reading.cpu_seconds / result["bursts"], 2) if result["bursts"] else None
                )
                result["others_cores"] = round(
                    max(0.0, busy - reading.cpu_seconds) / reading.wall_seconds, 2
                )
                results.append(result)
                if not result["held"]:
                    break
                best = n
        finally:
            proc.terminate()
            with contextlib.suppress(Exception):
                proc.wait(10)
    return {"realtime_talkers": best, "capacity_steps": results}


def main(args: argparse.Namespace) -> int:
    from voice_server.transcribe.engines import EngineError, choose_model, load_factory
    from voice_server.tts.openjtalk import TtsUnavailable, synthesize

    try:
        choice = choose_model("whisper", args.model, Path("./models"), args.language or "ja")
        factory = load_factory(choice)
    except EngineError as exc:
        raise SystemExit(f"bench transcribe: {exc}") from None
    material = sentences(N_SENTENCES)
    terms = phrase_list(material)
    try:
        pcms = [synthesize(s.text).pcm for s in material]
    except TtsUnavailable as exc:
        raise SystemExit(f"bench transcribe: {exc}") from None
    packets = [opus_packets(p) for p in pcms]
    work = Path(tempfile.mkdtemp(prefix="bench-transcribe-ja-"))
    report: dict[str, Any] = {
        "engine": "whisper",
        "model": choice.name,
        "language": choice.language,
        "device": getattr(factory, "device", "cpu"),
        "material": f"{N_SENTENCES} generated sentences, Open JTalk voice Mei, 20 ms Opus 24 kbps",
        "phrases": terms,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    t0 = time.monotonic()
    direct = _direct(factory, material, packets, terms)
    texts = direct.pop("texts")
    report.update(direct)
    report.update(_pipeline(args, work, factory, material, pcms))
    if args.capacity_seconds > 0:
        report.update(asyncio.run(_capacity(args, work, factory, packets)))
    report["texts"] = texts
    report["seconds"] = round(time.monotonic() - t0, 1)
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0
