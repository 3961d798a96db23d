"""``voice-server bench latency``: mouth-to-ear latency through the server, on one machine.

Set-up (inside a private network namespace, see :mod:`voice_server.bench.netns`): a server, a
talking browser A whose fake microphone plays short tone bursts (``--tone-ms`` every
``--period`` s, each a separate talk burst: the gaps are longer than the client's and the
server's hangovers together), a listening browser B and a listening headset client H
(``voice-client``). Everything runs on one machine, so one clock (the wall clock) times both
ends:

- *sent*: A's gate worklet stamps each onset as it leaves the gate for the browser's encoder
  (``Date.now()`` on the audio thread);
- *played*: B's probe worklet on the received track stamps it as it reaches WebAudio (after the
  browser's jitter buffer and decoder); H stamps it as its PulseAudio output plays it
  (PortAudio's DAC time; ``--headset-output device``) or as it is handed to playout.

Each sent onset is matched with the first onset each receiver plays within a second after it.
The server's own view comes from ``voice_media_talk_onset_seconds`` (first voiced packet of a
burst to its first forwarded copy; this is mostly the server's 40 ms talk attack).
Targets: p95 <= 150 ms mouth-to-ear (ITU-T G.114 "good"), p95 <= 100 ms onset to forward.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from voice_server.bench import browser, netns, pulse
from voice_server.bench.httpsync import HttpError, get_text
from voice_server.bench.ports import free_port

__all__ = [
    "Headset",
    "LatencyOptions",
    "bench_server",
    "connected",
    "join_token",
    "main_latency",
    "match_onsets",
    "open_page",
    "percentile",
    "run_latency",
    "wait_until",
    "write_bursts",
]

MOUTH_TO_EAR_P95_MS = 150.0
ONSET_TO_FORWARD_P95_MS = 100.0
CHANNEL = "bench"
MIN_GAP_MS = 1200  # silence between bursts: the client's 500 ms and the server's 600 ms hangovers


@dataclass(frozen=True, slots=True)
class LatencyOptions:
    bursts: int = 50
    period: float = 3.0
    tone_ms: int = 1000  # a short utterance (see the README: 300 ms keeps NetEq at its start)
    headset_output: str = "auto"  # auto | device | decoded
    settle: float = 3.0  # seconds after everyone is connected before onsets count


@dataclass
class PathResult:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    missed: int = 0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "path": self.name,
            "bursts": len(lat),
            "missed": self.missed,
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p95_ms": round(percentile(lat, 95), 1) if lat else None,
            "max_ms": round(lat[-1], 1) if lat else None,
        }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def match_onsets(
    sent_ms: list[float], played_ms: list[float], window_ms: float = 1000.0
) -> tuple[list[float], int]:
    """For each sent onset the first played onset within ``window_ms`` after it."""
    played = sorted(played_ms)
    latencies: list[float] = []
    missed = 0
    j = 0
    for t in sorted(sent_ms):
        while j < len(played) and played[j] < t:
            j += 1
        if j < len(played) and played[j] - t <= window_ms:
            latencies.append(played[j] - t)
            j += 1
        else:
            missed += 1
    return latencies, missed


def write_bursts(path: Path, tone_ms: int, period: float, freq: float = 1000.0) -> None:
    rate = 48000
    on = rate * tone_ms // 1000
    total = int(rate * period)
    samples = [int(9000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(on)]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack(f"<{on}h", *samples) + bytes(2 * (total - on)))


@contextlib.contextmanager
def bench_server(
    data_dir: Path,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    media_port: int | None = None,
) -> Iterator[str]:
    """A ``serve`` process on free ports (or ``media_port``; ``env``, ``args`` added); its
    base URL."""
    port, media = free_port(socket.SOCK_STREAM), media_port or free_port(socket.SOCK_DGRAM)
    base = [sys.executable, "-m", "voice_server.cli"]
    subprocess.run(
        [*base, "channels", "add", CHANNEL, "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
    )
    log = (data_dir / "server.log").open("wb")
    cmd = [*base, "serve", "--data-dir", str(data_dir), "--port", str(port)]
    cmd += ["--media-port", str(media), "--log-level", "warning", *args]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the server did not start: " + (data_dir / "server.log").read_text()
                )
            with contextlib.suppress(HttpError):
                if get_text(f"{url}/readyz", timeout=1)[0] == 200:
                    break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def join_token(data_dir: Path, name: str) -> str:
    from voice_server.identity.keys import load_or_create_key
    from voice_server.identity.tokens import Audience, Role, issue_token

    return issue_token(
        load_or_create_key(data_dir),
        sub=name,
        name=name,
        channels=[CHANNEL],
        role=Role.STAFF,
        aud=Audience.JOIN,
        ttl_seconds=3600,
        now=int(time.time()),
    )


class Headset:
    """A ``voice-client`` listening with --report-onsets; its onset events read on a thread,
    and its ``receive`` events (the receive buffer's counters) on request (:meth:`receive_now`)."""

    def __init__(
        self,
        url: str,
        token: str,
        env: dict[str, str] | None,
        device: bool,
        args: tuple[str, ...] = (),
    ) -> None:
        cmd = [sys.executable, "-m", "voice_client.cli", "--server", url, "--channel", CHANNEL]
        cmd += ["--token", token, "--device-id", "bench-headset", "--report-onsets", *args]
        if device:
            cmd += ["--output"]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.onsets_ms: list[float] = []
        self.connected = threading.Event()
        self.output_latency_ms: float | None = None
        self.receive: list[dict[str, Any]] = []  # the client's ``receive`` events, in order
        self._received = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event["event"] == "onset":
                self.onsets_ms.append(float(event["wall"]) * 1000.0)
            elif event["event"] == "media" and event.get("state") == "connected":
                self.connected.set()
            elif event["event"] == "audio":
                self.output_latency_ms = event.get("output_latency_ms")
            elif event["event"] == "receive":
                with self._received:
                    self.receive.append(event)
                    self._received.notify_all()

    def receive_now(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """The client's receive counters now (it prints them on SIGUSR1), None if none came."""
        with self._received:
            seen = len(self.receive)
            if self.proc.poll() is not None:
                return None
            self.proc.send_signal(signal.SIGUSR1)
            if not self._received.wait_for(lambda: len(self.receive) > seen, timeout):
                return None
            return self.receive[seen]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


#: what went wrong while each open page loaded and ran (console errors, uncaught exceptions,
#: failed or refused requests), by ``id(page)``: :func:`page_problems`
_PROBLEMS: dict[int, list[str]] = {}


def page_problems(page: Any) -> list[str]:
    """The page's console errors, uncaught exceptions and failed requests so far (the last 20),
    with the wall clock (ms)."""
    return _PROBLEMS.get(id(page), [])[-20:]


def _watch_problems(page: Any) -> None:
    problems = _PROBLEMS.setdefault(id(page), [])

    def note(text: str, when: bool = True) -> None:
        if when:
            problems.append(f"{time.time() * 1000:.0f} {text[:300]}")

    page.on("console", lambda m: note(f"console {m.text}", m.type in ("error", "warning")))
    page.on("pageerror", lambda e: note(f"pageerror {e}"))
    page.on("requestfailed", lambda r: note(f"requestfailed {r.url} {r.failure}"))
    page.on("response", lambda r: note(f"response {r.status} {r.url}", r.status >= 400))
    page.on("crash", lambda _: note("crash"))
    page.on("close", lambda _: _PROBLEMS.pop(id(page), None))


def open_page(pw: Any, url: str, token: str, audio: Path, args: tuple[str, ...] = ()) -> Any:
    """A Chromium page joined to the bench channel with diagnostics on."""
    b = browser.launch_chromium(pw, audio_file=audio, extra_args=args)
    page = b.new_page()
    _watch_problems(page)
    page.goto(f"{url}/#channel={CHANNEL}&token={token}&autojoin=1&diag=1")
    return page


def connected(page: Any) -> bool:
    return bool(
        page.evaluate(
            "document.body.dataset.state === 'joined'"
            " && document.body.dataset.media === 'connected'"
        )
    )


def wait_until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _server_onsets(url: str) -> dict[str, Any]:
    """p50/p95 of voice_media_talk_onset_seconds from its Prometheus buckets."""
    buckets: list[tuple[float, float]] = []
    for line in get_text(f"{url}/metrics")[1].splitlines():
        if line.startswith("voice_media_talk_onset_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            bound = math.inf if le == "+Inf" else float(le)
            buckets.append((bound, float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, Any] = {
        "path": "server: talk onset -> first packet forwarded",
        "bursts": int(total),
    }
    for p in (50, 95):
        value = None
        if total:
            rank = p / 100.0 * total
            prev_bound, prev_cum = 0.0, 0.0
            for bound, cum in buckets:
                if cum >= rank:
                    if math.isinf(bound):
                        value = prev_bound
                    else:
                        frac = (rank - prev_cum) / max(cum - prev_cum, 1e-9)
                        value = prev_bound + (bound - prev_bound) * frac
                    break
                prev_bound, prev_cum = bound, cum
        out[f"p{p}_ms"] = None if value is None else round(value * 1000, 1)
    return out


def run_latency(opts: LatencyOptions, log: IO[str] = sys.stderr) -> dict[str, Any]:
    """Run the benchmark (in a private network namespace); return the figures."""
    reason = netns.available() or browser.missing()
    if reason:
        raise RuntimeError(reason)
    device = opts.headset_output == "device" or (
        opts.headset_output == "auto" and pulse.missing() is None
    )
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp_name, netns.isolated():
        tmp = Path(tmp_name)
        bursts, silence = tmp / "bursts.wav", tmp / "silence.wav"
        write_bursts(bursts, opts.tone_ms, opts.period)
        write_bursts(silence, 0, 1.0)
        data = tmp / "data"
        data.mkdir()
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(bench_server(data))
            env = None
            if device:
                env = stack.enter_context(pulse.pulse_server(tmp / "pulse", ("headset",)))
                env = {**env, "PULSE_SINK": "headset"}
            headset = Headset(url, join_token(data, "headset"), env, device)
            stack.callback(headset.stop)
            pw = stack.enter_context(sync_playwright())
            listener = open_page(pw, url, join_token(data, "listener"), silence)
            talker = open_page(pw, url, join_token(data, "talker"), bursts)
            wait_until(lambda: connected(listener) and connected(talker), 30, "both browsers")
            wait_until(headset.connected.is_set, 30, "the headset client")
            time.sleep(opts.settle)
            start_ms = time.time() * 1000.0
            print(
                f"bench latency: timing {opts.bursts} bursts, one every {opts.period:g} s "
                f"(~{opts.bursts * opts.period:.0f} s)",
                file=log,
                flush=True,
            )
            time.sleep(opts.bursts * opts.period + 1.5)
            sent = [t for t in talker.evaluate("window.voiceDiag.txOnsets") if t >= start_ms]
            sent = sorted(sent)[: opts.bursts]
            rx = listener.evaluate("Object.values(window.voiceDiag.rxOnsets).flat()")
            browser_path = PathResult("browser -> browser")
            browser_path.latencies_ms, browser_path.missed = match_onsets(sent, rx)
            headset_name = "browser -> headset client" + (
                " (PulseAudio output)" if device else " (handed to playout)"
            )
            headset_path = PathResult(headset_name)
            headset_path.latencies_ms, headset_path.missed = match_onsets(sent, headset.onsets_ms)
            server = _server_onsets(url)
            output_latency = headset.output_latency_ms
            neteq = _jitter_buffer_ms(listener.evaluate("window.voiceDiag.stats()"))
    return {
        "bursts_sent": len(sent),
        "period_s": opts.period,
        "tone_ms": opts.tone_ms,
        "headset_output_latency_ms": output_latency,
        "browser_jitter_buffer_ms": neteq,
        "paths": [browser_path.summary(), headset_path.summary(), server],
        "targets": {
            "mouth_to_ear_p95_ms": MOUTH_TO_EAR_P95_MS,
            "onset_to_forward_p95_ms": ONSET_TO_FORWARD_P95_MS,
        },
    }


def _jitter_buffer_ms(stats: dict[str, Any]) -> dict[str, float] | None:
    """The listening browser's jitter buffer over the run (ms): average delay, target, and the
    minimum NetEq estimates the network needs (target without floors such as the client's
    ``jitterBufferTarget``; None where the browser does not report it)."""
    for s in (stats or {}).get("inbound", {}).values():
        emitted = s.get("jitterBufferEmittedCount") or 0
        if emitted:
            minimum = s.get("jitterBufferMinimumDelay")
            jitter = s.get("jitter")
            return {
                "arrival_jitter": None if jitter is None else round(1000 * jitter, 1),
                "average": round(1000 * s["jitterBufferDelay"] / emitted, 1),
                "target": round(1000 * (s.get("jitterBufferTargetDelay") or 0) / emitted, 1),
                "minimum": None if minimum is None else round(1000 * minimum / emitted, 1),
            }
    return None


def _verdict(p95: float | None, target: float) -> str:
    if p95 is None:
        return "no data"
    return "ok" if p95 <= target else "OVER TARGET"


def main_latency(opts: LatencyOptions, json_out: IO[str] | None = None) -> int:
    gap_ms = opts.period * 1000 - opts.tone_ms
    if opts.bursts < 1 or not 50 <= opts.tone_ms <= 1000 or gap_ms < MIN_GAP_MS:
        print(
            "voice-server bench latency: need --bursts >= 1, --tone-ms within 50..1000 and "
            f"--period at least {MIN_GAP_MS / 1000:g} s longer than the tone (each burst must end "
            "before the next: client and server hangovers)",
            file=sys.stderr,
        )
        return 2
    try:
        result = run_latency(opts)
    except (RuntimeError, netns.NetnsError) as exc:
        print(f"voice-server bench latency: {exc}", file=sys.stderr)
        return 1
    print(f"{'path':<48} {'bursts':>6} {'missed':>6} {'p50 ms':>8} {'p95 ms':>8}  target p95")
    for row in result["paths"]:
        target = (
            ONSET_TO_FORWARD_P95_MS if row["path"].startswith("server") else MOUTH_TO_EAR_P95_MS
        )
        print(
            f"{row['path']:<48} {row['bursts']:>6} {row.get('missed', 0):>6} "
            f"{_fmt(row['p50_ms']):>8} {_fmt(row['p95_ms']):>8}  <= {target:g} ms "
            f"{_verdict(row['p95_ms'], target)}"
        )
    if result["headset_output_latency_ms"] is not None:
        print(
            f"(headset output device latency reported by PortAudio: "
            f"{result['headset_output_latency_ms']} ms, included)"
        )
    if result["browser_jitter_buffer_ms"] is not None:
        jb = result["browser_jitter_buffer_ms"]
        print(
            f"(listening browser's jitter buffer over the run: average {jb['average']} ms, "
            f"target {jb['target']} ms, network minimum {jb['minimum']} ms; RTP arrival jitter "
            f"(RFC 3550) at the end {jb['arrival_jitter']} ms)"
        )
    if json_out is not None:
        json.dump(result, json_out, indent=2)
        json_out.write("\n")
    return 0


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
