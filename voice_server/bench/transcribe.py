"""``voice-server bench transcribe --json FILE``: the transcription pipeline's figures.

Phases (a fresh data directory, a real server and a real sidecar, all on 127.0.0.1):

1. **Fidelity and commit latency.** A headset client (aiortc, in this process) plays the speech
   file into a channel, once as is and once with 5 % of its RTP packets dropped in the sender by
   a seeded generator. ``fidelity`` = 1 − CER between the pipeline's text (the run's utterances
   in start order, spaces removed) and a direct decoding of the same audio: the clips of the
   lossless run, decoded in one piece by :mod:`voice_server.transcribe.direct`.
   ``fidelity_vs_source`` compares with a direct decoding of the original file instead (the
   codec then counts too; with espeak-ng's Korean, which this model does not really recognise,
   small codec changes move its guesses a lot). ``commit_latency_ms``: burst end (server) →
   utterance committed (sidecar), from the call log.
   Vosk's text is a function of the audio alone since the model is loaded without dither
   (:mod:`voice_server.transcribe.recognizer`), so at 0 % loss the pipeline must give exactly
   the direct decoding's text; anything less is a pipeline fault.
2. **CPU on silence.** Five clients connected and sending silence; the sidecar's CPU (% of one
   core) over 10 s.
3. **Real-time talkers.** :mod:`voice_server.bench.transcribe_replay`, with a new burst of
   speech for every talker of every step (:mod:`voice_server.bench.transcribe_speech`), after
   three rounds of unmeasured warm-up bursts (one per pooled recognizer). ``realtime_talkers``
   is what the sidecar held with the CPU the shared machine left it (each step reports
   ``others_cores``); ``capacity_cpu_per_audio_second`` (median over the steps) and
   ``talkers_per_2_free_cores`` (2 / that) do not depend on the other load.

The speech is espeak-ng's Korean unless ``--speech`` / ``--capacity-speech`` give recordings.
The Korean model does not recognise that voice and searches harder on it than on real speech:
the talker count it gives is a floor; recordings of real speech in the model's language give
the figure for a deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voice_server.bench.httpsync import HttpError, get_text
from voice_server.bench.procstat import CpuMeter
from voice_server.bench.stats import percentile
from voice_server.bench.transcribe_replay import run_capacity
from voice_server.calllog.model import SearchQuery
from voice_server.calllog.normalize import strip_spaces
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import issue_token
from voice_server.store.database import Database
from voice_server.transcribe.direct import recognize_file
from voice_server.transcribe.errorrate import score

__all__ = ["add_parser", "main"]

SENTENCES = [
    "안녕하세요 동쪽 문에서 물이 새고 있습니다",
    "오늘 회의는 세 시에 시작합니다",
    "대피소에 담요가 더 필요합니다",
    "주차장에 차가 너무 많아요",
]


def add_parser(bsub: Any) -> None:
    p = bsub.add_parser("transcribe", help="transcription: talkers, latency, silence, fidelity")
    p.add_argument("--json", type=Path, help="write the figures to this file")
    p.add_argument("--speech", type=Path, help="speech WAV (default: espeak-ng Korean)")
    p.add_argument("--model", help="Vosk model directory (default: as the transcriber chooses)")
    p.add_argument(
        "--capacity-speech",
        type=Path,
        help="folder of recordings for the talker phase (default: espeak-ng Korean sentences)",
    )
    p.add_argument("--steps", default="1,2,3,4,6,8,10,12,14,16", help="talker counts to try")
    p.add_argument("--burst-seconds", type=float, default=8.0, help="burst length, talker phase")
    p.add_argument(
        "--warm-recognizers", type=int, default=12, help="passed to the sidecars (0: no pool)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=-1,
        help="talkers of the unmeasured warm-up bursts (default: as many as --warm-recognizers)",
    )
    p.add_argument("--warmup-rounds", type=int, default=3, help="rounds of warm-up bursts")
    p.add_argument("--loss", type=float, default=0.05, help="sender loss of the lossy run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--silence-seconds", type=float, default=10.0)
    p.add_argument("--silent-clients", type=int, default=5)


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "voice_server.cli", *args]


def _speech(path: Path) -> Path:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("bench transcribe: espeak-ng is needed (or give --speech FILE.wav)")
    import wave

    frames, rate = b"", 22050
    for i, text in enumerate(SENTENCES):
        part = path.with_suffix(f".{i}.wav")
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(part), text], check=True)
        with wave.open(str(part), "rb") as w:
            rate = w.getframerate()
            frames += w.readframes(w.getnframes()) + b"\0\0" * int(rate * 1.5)
        part.unlink()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@contextlib.contextmanager
def _process(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(HttpError):
            if predicate():
                return
        time.sleep(0.2)
    raise SystemExit(f"bench transcribe: timed out waiting for {what}")


@contextlib.contextmanager
def _lossy_sender(loss: float, seed: int) -> Iterator[None]:
    """Drop ``loss`` of the outgoing RTP (not RTCP) packets of aiortc peers in this process."""
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtp import is_rtcp

    original = RTCDtlsTransport._send_rtp
    rng = random.Random(seed)

    async def send(self: Any, data: bytes) -> None:
        if loss > 0 and not is_rtcp(data) and rng.random() < loss:
            return
        await original(self, data)

    RTCDtlsTransport._send_rtp = send  # type: ignore[method-assign]
    try:
        yield
    finally:
        RTCDtlsTransport._send_rtp = original  # type: ignore[method-assign]


def _talk(
    url: str, token: str, sub: str, wav: Path, seconds: float, loss: float, seed: int
) -> None:
    from voice_client.runner import Options, run
    from voice_client.signaling import websocket_url
    from voice_client.wavio import read_pcm48

    opts = Options(
        url=websocket_url(url),
        channel="bench",
        device_id=sub,
        token=token,
        pcm=read_pcm48(wav),
        duration=seconds,
        out=open(os.devnull, "w"),
    )
    with _lossy_sender(loss, seed):
        asyncio.run(run(opts))


def _run_utterances(log: SqliteCallLog, sub: str) -> list[Any]:
    page = log.search(SearchQuery(speaker=sub, limit=200))
    return sorted(page.items, key=lambda u: u.start_ms)


def main(args: argparse.Namespace) -> int:
    from voice_server.bench.transcribe_speech import Recordings, SyntheticKorean
    from voice_server.transcribe.catalogue import resolve
    from voice_server.transcribe.recognizer import VoskFactory

    work = Path(tempfile.mkdtemp(prefix="bench-transcribe-"))
    data = work / "data"
    wav = args.speech or _speech(work / "speech.wav")
    choice = resolve(args.model, Path("./models"))
    factory = VoskFactory(choice.path, name=choice.name, language=choice.language)
    port, media = _free_port(), _free_port(socket.SOCK_DGRAM)
    url = f"http://127.0.0.1:{port}"
    subprocess.run(_cli("channels", "add", "bench", "--data-dir", str(data)), check=True)
    key = load_or_create_key(data)
    # normal CPU priority: the figures are the sidecar's capacity (a deployment's default,
    # SCHED_IDLE, gives it the same CPU when nothing else wants it)
    model_args = ["--model", str(choice.path), "--warm-recognizers", str(args.warm_recognizers)]
    model_args += ["--cpu-priority", "normal"]
    serve = _cli("serve", "--data-dir", str(data), "--port", str(port), "--media-port", str(media))
    side = _cli("transcriber", "--server", url, "--data-dir", str(data), *model_args)
    report: dict[str, Any] = {
        "model": choice.name,
        "speech": str(wav),
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }
    with _process(serve, work / "server.log") as server, _process(side, work / "sidecar.log") as sc:
        _wait(lambda: "voice_transcription_link_up 1" in get_text(f"{url}/metrics")[1], 90, "link")
        log = SqliteCallLog(Database(data / "voice.db"))
        spoken = 0.0
        with contextlib.suppress(Exception):
            import av

            with av.open(str(wav)) as c:
                spoken = (c.duration or 0) / 1e6
        texts: dict[str, str] = {}
        for name, loss in (("loss0", 0.0), ("loss5", args.loss)):
            sub = f"bench-{name}"
            token = issue_token(key, sub=sub, name=sub, channels=["bench"], now=int(time.time()))
            _talk(url, token, sub, wav, spoken + 2.5, loss, args.seed)
            _wait(
                lambda s=sub: _run_utterances(log, s) and not list((data / "spool").glob("*.ogg*")),
                60,
                f"the {name} utterances",
            )
            time.sleep(1.0)
            texts[name] = "".join(strip_spaces(u.text) for u in _run_utterances(log, sub))
        clips = [data / u.clip for u in _run_utterances(log, "bench-loss0") if u.clip]
        # the same audio as received, decoded directly clip by clip (one recognizer per burst,
        # as the pipeline does)
        received = "".join(strip_spaces(recognize_file(factory, c).text) for c in clips)
        report["texts"] = {"direct": received, **texts}
        source = strip_spaces(recognize_file(factory, wav).text)
        report["fidelity"] = {
            k: round(max(0.0, 1 - score(received, t).cer), 4) for k, t in texts.items()
        }
        report["fidelity_vs_source"] = {
            k: round(max(0.0, 1 - score(source, t).cer), 4) for k, t in texts.items()
        }
        lat = log.commit_latencies_ms(0)
        report["commit_latency_ms"] = {
            "p50": percentile(lat, 50) if lat else None,
            "p95": percentile(lat, 95) if lat else None,
            "max": max(lat) if lat else None,
            "n": len(lat),
            "all": sorted(lat),
        }
        report["silence_cpu_pct"], report["server_cpu_pct_silence"] = _silence(
            url, key, work, sc.pid, server.pid, args
        )
    steps = [int(s) for s in args.steps.split(",") if s.strip()]
    link_port = _free_port()
    side2 = _cli(
        "transcriber",
        "--server",
        f"http://127.0.0.1:{link_port}",
        "--data-dir",
        str(data),
        *model_args,
    )
    log_path = work / "sidecar-capacity.log"

    def start_sidecar() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as out:
            return subprocess.Popen(side2, stdout=out, stderr=subprocess.STDOUT)

    speech: SyntheticKorean | Recordings
    if args.capacity_speech is not None:
        speech = Recordings(args.capacity_speech, args.burst_seconds)
    else:
        speech = SyntheticKorean(work, args.burst_seconds, seed=args.seed)
    warmup = args.warm_recognizers if args.warmup < 0 else args.warmup
    capacity = asyncio.run(
        run_capacity(
            key,
            link_port,
            speech,
            start_sidecar,
            steps,
            warmup=warmup,
            warmup_rounds=args.warmup_rounds,
        )
    )
    report["realtime_talkers"] = capacity["realtime_talkers"]
    report["capacity_speech"] = speech.description
    report["capacity_cpu_per_audio_second"] = capacity["cpu_per_audio_second"]
    report["talkers_per_2_free_cores"] = capacity["talkers_per_2_free_cores"]
    report["capacity_warmup"] = capacity["warmup"]
    report["capacity_steps"] = capacity["steps"]
    report["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, ensure_ascii=False, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _silence(
    url: str, key: bytes, work: Path, sidecar_pid: int, server_pid: int, args: argparse.Namespace
) -> tuple[float, float]:
    clients = []
    for i in range(args.silent_clients):
        token = issue_token(
            key, sub=f"quiet-{i}", name=f"quiet {i}", channels=["bench"], now=int(time.time())
        )
        cmd = [
            sys.executable, "-m", "voice_client.cli", "--server", url, "--channel", "bench",
            "--token", token, "--duration", str(args.silence_seconds + 6), "--device-id", f"q{i}",
        ]  # fmt: skip
        clients.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(4.0)
    side, srv = CpuMeter(sidecar_pid), CpuMeter(server_pid)
    side.start()
    srv.start()
    time.sleep(args.silence_seconds)
    a, b = side.stop(), srv.stop()
    for c in clients:
        c.wait(30)
    return round(a.cores * 100, 2), round(b.cores * 100, 2)
