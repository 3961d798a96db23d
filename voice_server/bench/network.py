"""``voice-server bench network``: mouth-to-ear latency browser -> browser and browser -> headset
client over each media path (UDP, ICE-TCP, TURN over TLS; the headset has no ICE-TCP) at 0 % and
2 % loss, in one run.

Set-up (a private network namespace, :mod:`voice_server.bench.netns`): the server with its
ICE-TCP candidate, coturn on 127.0.0.3:443 (TLS, a self-signed certificate whose key Chromium
gets pinned, the headset client ``--ca-file``) handing out credentials through
``joined.ice_servers``, and per condition a fresh talking and a fresh listening Chromium and a
listening ``voice-client``, timed as ``bench latency`` does (the talker's gate stamps each burst's
onset, the listener's probe stamps it as played, the headset as handed to playout; one clock).

Each condition's path is forced with nftables in the input hook (a dropped check looks like a
lost packet to ICE): *udp* drops TCP to the media port and the relay's UDP; *tcp* drops all UDP
to the media port (the relay's too); *turn-tls* lets only the relay (127.0.0.3) reach the media
port. Loss is random (``numgen random``, no tc/netem needed) on the phone's access leg only, both
directions: the media port's packets for udp and tcp, TCP port 443 (phone <-> relay) for
turn-tls. Each row says the path both browsers reported (``stats``), so a wrong path shows.

Targets (issue #21): at 0 % loss TCP and TURN-TLS p95 within +30 ms of UDP; at 2 % loss TCP
within +80 ms of UDP (head-of-line blocking).

Loss (issue #22): ``--loss 0,5,10,20`` adds rows at those random losses and ``--red on,off``
runs every condition with audio RED offered and without (a server with ``VOICE_AUDIO_RED=false``,
same run); ``--direction up|down|both`` puts the loss on the phone's uplink (the issue's targeted
rows), its downlink, or both (issue #21's rows), ``--pattern bursty`` adds a 10 % Gilbert row
(:data:`GILBERT`, kept per flow in a conntrack mark), and ``--full`` runs the whole matrix. Each
row has ``red``, ``pattern``, ``direction`` and ``quality`` (:func:`concealment`: the listener's
concealed samples less silent concealment, and raw, over the samples received; FEC/RED packets
received and discarded) and, for the browser listener, a speech score (:mod:`speechscore`:
after the timed bursts a second talker says three Japanese sentences in a loop for
``--speech-seconds`` and the listening page records what it played; ``stoi``, ``pesq_wb``,
``utterances``). ``--jitter J`` adds UDP rows (``pattern: "jitter"``) whose datagrams each wait
0..2J ms in a user-space relay (:mod:`jitter`: this kernel has no netem). The headset rows'
``quality`` (reported, never targeted; :func:`headset_quality`) comes from the client itself:
the frames its receive buffer filled over the frames it played in the timed window (its
``receive`` counters, printed on SIGUSR1, before and after), and the same speech score on what it
recorded (``--record``) while the speech talker spoke. The path summary compares RED-on,
random, both-ways rows only.
``network_change``: with
RED on and UDP, ``--moves`` times the phones' address moves mid-talk (:mod:`netchange`) and
``gap_ms`` is the worst gap at the listener (``gaps_ms`` each; the talker talks all along
meanwhile, :data:`TALK_MS` of every :data:`TALK_PERIOD`); ``--change handover`` (or ``both``,
the default) adds ``network_change.handover``: as many Wi-Fi → LTE handovers, each with
a fresh pair of pages while a second network is up from the start (its address already a host
candidate), the address the talker's selected pair uses then cut (``gap_ms`` the worst,
``switched_ms`` when each talker's selected pair left it, ``listener_switched_ms`` the
listener's).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from voice_server.bench import browser, jitter, netchange, netns, speechscore, turnrelay
from voice_server.bench.httpsync import get_text
from voice_server.bench.latency import (
    Headset,
    PathResult,
    bench_server,
    connected,
    join_token,
    match_onsets,
    open_page,
    page_problems,
    wait_until,
    write_bursts,
)

__all__ = [
    "DIRECTIONS",
    "GILBERT",
    "PATHS",
    "PATTERNS",
    "NetworkOptions",
    "change_targets",
    "concealment",
    "conditions",
    "format_summary",
    "full_matrix",
    "headset_quality",
    "rules",
    "run_network",
    "summarize",
]

PATHS = ("udp", "tcp", "turn-tls")
RELAY = "127.0.0.3"
TURN_PORT = 443
TABLE = "voice_bench_network"
TARGET_0 = 30.0  # ms over UDP's p95 at 0 % loss, TCP and TURN-TLS
TARGET_LOSS_TCP = 80.0  # ms over UDP's p95 at 2 % loss, TCP
TARGET_CONCEALED = 0.02  # at 10 % random uplink loss with RED, the browser listener
TARGET_STOI_DROP = 0.05  # STOI at 10 % random uplink loss with RED below the 0 % row's
TARGET_CHANGE_MS = 1000.0  # a network change's gap at the listening browser, p95
#: where the loss is: the phone's uplink (to the media port: the issue's targets), its downlink
#: (from it: reported), or both (issue #21's path rows)
DIRECTIONS = ("up", "down", "both")
PATTERNS = ("random", "bursty")
#: the bursty rows' Gilbert model (two states, per flow, in nftables: a conntrack mark holds the
#: state): good -> bad with p, bad -> good with r, every packet lost in bad, none in good; mean
#: loss p / (p + r) = 10 %, mean burst 1 / r ≈ 4.4 packets (netem's ``loss gemodel 2.5% 22.5%
#: 100% 0%``; this kernel has no netem qdisc). Measured on 20 000 datagrams: 10.0 %, bursts 4.1.
GILBERT = {"p": 0.025, "r": 0.225, "loss_in_bad": 1.0, "loss_in_good": 0.0}
BURSTY_LOSS = GILBERT["p"] / (GILBERT["p"] + GILBERT["r"])
#: the network changes' talker: 2.3 s of tone every 2.5 s (the e2e tests' near-continuous talk),
#: so the longest gap at the listener is the change's, not a pause between bursts
TALK_MS = 2300
TALK_PERIOD = 2.5


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    bursts: int = 20
    period: float = 2.5
    tone_ms: int = 1000
    paths: tuple[str, ...] = PATHS
    losses: tuple[float, ...] = (0.0, 0.02)
    settle: float = 3.0
    reds: tuple[bool, ...] = (True,)  # audio RED offered (VOICE_AUDIO_RED), per condition
    moves: int = 3  # network changes mid-talk (UDP, no loss) for network_change.gap_ms; 0: none
    #: which network changes: "move" (the address moves: network_change.gap_ms), "handover" (a
    #: second network up from the start, the first cut: network_change.handover)
    changes: tuple[str, ...] = ("move", "handover")
    directions: tuple[str, ...] = ("both",)
    patterns: tuple[str, ...] = ("random",)  # "bursty": one more row per path at 10 % (GILBERT)
    speech_seconds: float = 12.0  # the browser listener's recorded speech per row; 0: no score
    jitter_ms: float = 0.0  # > 0: UDP rows with ±this jitter in each direction (jitter.py)


def full_matrix(opts: NetworkOptions) -> NetworkOptions:
    """``--full``: every path, 0/5/10/20 % random and 10 % bursty, uplink and downlink loss,
    RED on and off (about 60 conditions)."""
    return replace(opts, paths=PATHS, losses=(0.0, 0.05, 0.10, 0.20), reds=(True, False),
                   directions=("up", "down"), patterns=PATTERNS, jitter_ms=40.0)  # fmt: skip


def conditions(opts: NetworkOptions) -> list[tuple[str, float, str]]:
    """(pattern, loss, direction) per path: random at each loss, bursty once at its 10 %; a
    0 % row once (no direction to it)."""
    out: list[tuple[str, float, str]] = []
    for pattern in opts.patterns:
        losses = (BURSTY_LOSS,) if pattern == "bursty" else opts.losses
        for loss in losses:
            for direction in opts.directions[:1] if loss == 0 else opts.directions:
                out.append((pattern, loss, direction))
    return out


CONCEALMENT = """async () => {
  const pc = window.voiceDiag.call.pc;
  const out = {concealed: 0, silent: 0, samples: 0, fec: 0, fecDiscarded: 0};
  if (pc) (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      out.concealed += s.concealedSamples || 0; out.silent += s.silentConcealedSamples || 0;
      out.samples += s.totalSamplesReceived || 0; out.fec += s.fecPacketsReceived || 0;
      out.fecDiscarded += s.fecPacketsDiscarded || 0;
    }
  });
  return out;
}"""


def concealment(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The listener's quality figures over a window: concealed samples less silent concealment
    (``concealed_ratio``: what NetEq made up while audio was due) and all of them
    (``concealed_ratio_raw``) over the samples received; RED/FEC packets NetEq got and threw
    away; the speech score (``stoi``, ``pesq_wb``, ``utterances``) is filled in by
    :func:`_speech_score` (null until then)."""
    d = {k: after[k] - before[k] for k in before}
    samples = d["samples"]
    # clamped: Chromium's two counters are not updated together (-0.09 % seen at 0 % loss)
    ratio = round(max(0.0, d["concealed"] - d["silent"]) / samples, 4) if samples > 0 else None
    raw = round(d["concealed"] / samples, 4) if samples > 0 else None
    return {
        "concealed_ratio": ratio,
        "concealed_ratio_raw": raw,
        "fec_packets_received": d["fec"],
        "fec_packets_discarded": d["fecDiscarded"],
        "stoi": None,
        "pesq_wb": None,
        "utterances": None,
    }


@dataclass(frozen=True, slots=True)
class Speech:
    """The speech talker's file and the sentences in it (:mod:`speechscore`)."""

    path: Path
    sentences: list[Any]
    rate: int


#: the headset's receive-buffer counters kept in its rows (``quality.jitter_buffer``)
HEADSET_COUNTERS = (
    "packets", "frames", "filled", "fec", "reordered", "late", "duplicates", "dropped",
    "skipped", "resets",
)  # fmt: skip


def headset_quality(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The headset client's figures over a window, from its ``receive`` events before and
    after: ``concealed_ratio`` = frames its buffer filled ÷ frames it played (filled ones
    included; the buffer fills only while audio is due, so ``concealed_ratio_raw`` is the same),
    ``jitter_buffer`` (each counter's change, and the window's depth), no FEC/RED packet counts
    (it gets the primary payload only); the speech score is filled in later (null until then)."""
    out: dict[str, Any] = {
        "concealed_ratio": None,
        "concealed_ratio_raw": None,
        "fec_packets_received": None,
        "fec_packets_discarded": None,
        "stoi": None,
        "pesq_wb": None,
        "utterances": None,
        "jitter_buffer": None,
    }
    if before is None or after is None:
        return out
    d = {k: int(after.get(k, 0)) - int(before.get(k, 0)) for k in HEADSET_COUNTERS}
    played = d["frames"] + d["filled"]
    if played > 0:
        out["concealed_ratio"] = out["concealed_ratio_raw"] = round(d["filled"] / played, 4)
    out["jitter_buffer"] = {"reorder_ms": after.get("reorder_ms"), **d}
    return out


def _headset_speech_score(
    speech: Speech, recording: Path, window: dict[str, float]
) -> dict[str, Any]:
    """The speech score of what the headset recorded while the browser listener recorded
    (``window``: ``start`` and ``stop`` on the headset's own clock, seconds since it started,
    which is sample 0 of its recording; 0.5 s more at the end for the way there)."""
    import numpy as np

    try:
        with wave.open(str(recording), "rb") as wav:
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error):
        return {"stoi": None, "pesq_wb": None, "utterances": 0}
    start = max(0, int(window["start"] * rate))
    stop = int((window["stop"] + 0.5) * rate) if "stop" in window else None
    recorded = np.frombuffer(pcm, dtype="<i2")[start:stop]
    if os.environ.get("VOICE_BENCH_KEEP_SPEECH"):  # the recording, for a look or a listen
        keep = Path(os.environ["VOICE_BENCH_KEEP_SPEECH"])
        keep.mkdir(parents=True, exist_ok=True)
        with wave.open(str(keep / f"headset-{time.time():.0f}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(recorded.tobytes())
    return speechscore.score(speech.sentences, speech.rate, recorded, rate)


def _speech_score(
    pw: Any, url: str, data: Path, speech: Speech, args: tuple[str, ...], listener: Any,
    seconds: float, settle: float, mark: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:  # fmt: skip
    """A talker saying :data:`speechscore.SENTENCES` in a loop and ``seconds`` of what the
    listening page played, scored against them (the same path and loss as the row);
    ``mark("start")`` and ``mark("stop")`` as the page starts and stops recording."""
    import base64

    import numpy as np

    talker = open_page(pw, url, join_token(data, "speaker"), speech.path, args)
    try:
        wait_until(lambda: connected(talker), 90, "the speech talker")
        time.sleep(settle)  # its first words, while the listener's jitter buffer adapts
        listener.evaluate("window.voiceDiag.startRecording()")
        mark("start")
        time.sleep(seconds)
        got = listener.evaluate("window.voiceDiag.stopRecording()")
        mark("stop")
    finally:
        with contextlib.suppress(Exception):
            talker.context.browser.close()
    recorded = np.frombuffer(base64.b64decode(got["pcm"]), dtype="<i2")
    if os.environ.get("VOICE_BENCH_KEEP_SPEECH"):  # the recording, for a look or a listen
        keep = Path(os.environ["VOICE_BENCH_KEEP_SPEECH"])
        keep.mkdir(parents=True, exist_ok=True)
        with wave.open(str(keep / f"heard-{time.time():.0f}.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(int(got["rate"]))
            out.writeframes(recorded.tobytes())
    return speechscore.score(speech.sentences, speech.rate, recorded, int(got["rate"]))


def rules(
    path: str, loss: float, media: int, direction: str = "both", pattern: str = "random"
) -> str:
    """The nftables table forcing ``path`` and dropping ``loss`` of the access leg's packets
    in ``direction`` (up: to the server's port, down: from it), at random or in Gilbert bursts
    (:data:`GILBERT`, whatever ``loss`` says)."""
    force = {
        "udp": [f"tcp dport {media} drop", f"ip saddr {RELAY} udp dport {media} drop"],
        "tcp": [f"udp dport {media} drop"],
        "turn-tls": [f"ip saddr != {RELAY} udp dport {media} drop", f"tcp dport {media} drop"],
    }[path]
    permille = round(loss * 1000)
    lossy: list[str] = []
    ways = {"up": ("dport",), "down": ("sport",), "both": ("dport", "sport")}[direction]
    proto, port = ("tcp", TURN_PORT) if path == "turn-tls" else (path, media)
    if permille > 0 and pattern == "bursty":
        p, r = round(GILBERT["p"] * 1000), round(GILBERT["r"] * 1000)
        for way in ways:  # bad -> good (delivered), stay bad (lost), good -> bad (lost)
            lossy += [
                f"{proto} {way} {port} ct mark 1 numgen random mod 1000 < {r} ct mark set 0 accept",
                f"{proto} {way} {port} ct mark 1 counter drop",
                f"{proto} {way} {port} ct mark 0 numgen random mod 1000 < {p} ct mark set 1 "
                "counter drop",
            ]
    elif permille > 0:
        lossy = [
            f"{proto} {way} {port} numgen random mod 1000 < {permille} counter drop" for way in ways
        ]
    body = "".join(f"    {rule};\n" for rule in [*force, *lossy])
    return (
        f"table inet {TABLE} {{\n  chain inp {{ type filter hook input priority 0; "
        f"policy accept;\n{body}  }}\n}}\n"
    )


def _apply(ruleset: str) -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    turnrelay.nft(ruleset)


def _path_of(page: Any) -> str | None:
    report = page.evaluate("window.voiceDiag.call.networkReport()")
    return report.get("path") if report else None


def _condition(
    pw: Any,
    url: str,
    data: Path,
    files: tuple[Path, Path],
    args: tuple[str, ...],
    opts: NetworkOptions,
    path: str,
    ca: Path,
    speech: Speech | None = None,
    log: IO[str] = sys.stderr,
) -> list[dict[str, Any]]:
    """One (path, loss) condition: a fresh talker, listener and (but on TCP, which aiortc lacks)
    listening headset client, timed; the rows' figures (browser, then headset)."""
    bursts, silence = files
    headset = None
    recording = bursts.parent / "headset.wav"  # what the headset played (``--record``)
    recording.unlink(missing_ok=True)
    if path != "tcp":
        token = join_token(data, "headset")
        headset_args: tuple[str, ...] = ("--ca-file", str(ca))
        if speech is not None:
            headset_args += ("--record", str(recording))
        headset = Headset(url, token, None, False, headset_args)
    listener = open_page(pw, url, join_token(data, "listener"), silence, args)
    talker = open_page(pw, url, join_token(data, "talker"), bursts, args)
    try:
        _both_connected({"listener": listener, "talker": talker}, url, data, log)
        if headset is not None:
            wait_until(headset.connected.is_set, 90, "the headset client")
        observed: list[str | None] = [None, None]

        def settled() -> bool:
            observed[:] = [_path_of(talker), _path_of(listener)]
            return observed[0] == observed[1] == path

        with contextlib.suppress(RuntimeError):  # reported in the row, not fatal
            wait_until(settled, 60, f"both browsers on {path}")
        time.sleep(opts.settle)
        start_ms = time.time() * 1000.0
        before = listener.evaluate(CONCEALMENT)
        heard_before = headset.receive_now() if headset is not None else None
        time.sleep(opts.bursts * opts.period + 1.5)
        after = listener.evaluate(CONCEALMENT)
        heard_after = headset.receive_now() if headset is not None else None
        headset_q = headset_quality(heard_before, heard_after)
        speech_window: dict[str, float] = {}

        def mark(what: str) -> None:  # where the speech sits in the headset's recording
            event = headset.receive_now() if headset is not None else None
            if event is not None:
                speech_window[what] = float(event["t"])

        sent = sorted(t for t in talker.evaluate("window.voiceDiag.txOnsets") if t >= start_ms)
        rx: list[float] = listener.evaluate("Object.values(window.voiceDiag.rxOnsets).flat()")
        quality = concealment(before, after)
        if speech is not None:
            with contextlib.suppress(Exception):
                talker.context.browser.close()  # one talker at a time
            quality |= _speech_score(
                pw, url, data, speech, args, listener, opts.speech_seconds, opts.settle, mark
            )
        receivers: list[tuple[str, list[float], list[str | None] | None, Any]] = [
            ("browser", rx, observed, quality)
        ]
        if headset is not None:  # the rules leave it no other path
            headset.stop()  # it writes its recording as it leaves
            if speech is not None and "start" in speech_window:
                with contextlib.suppress(Exception):  # reported as null, not fatal
                    headset_q |= _headset_speech_score(speech, recording, speech_window)
            receivers.append(("headset", headset.onsets_ms, None, headset_q))
        rows = []
        for receiver, played, seen, quality in receivers:
            result = PathResult(receiver)
            result.latencies_ms, result.missed = match_onsets(sent[: opts.bursts], played)
            row = result.summary()
            row.pop("path")
            rows.append({"receiver": receiver, "observed_paths": seen, **row, "quality": quality})
        return rows
    finally:
        for page in (talker, listener):
            with contextlib.suppress(Exception):
                page.context.browser.close()
        if headset is not None:
            headset.stop()


def _network_change(
    pw: Any, url: str, data: Path, files: tuple[Path, Path], args: tuple[str, ...], moves: int,
    media: int, log: IO[str] = sys.stderr,
) -> dict[str, Any]:  # fmt: skip
    """``moves`` address changes mid-talk (:mod:`netchange`), each gap at the listener."""
    bursts, silence = files
    listener = open_page(pw, url, join_token(data, "listener"), silence, args)
    talker = open_page(pw, url, join_token(data, "talker"), bursts, args)
    gaps: list[float] = []
    switched: list[float | None] = []
    asked: list[float | None] = []
    listener_asked: list[float | None] = []
    here = netns.BROWSER_ADDRESS
    try:
        _both_connected({"listener": listener, "talker": talker}, url, data, log)
        listener.evaluate(netchange.RX_TIMELINE)
        talker.evaluate(netchange.ICE_TIMELINE)
        for _ in range(moves):
            time.sleep(4.0)  # talk on the current path (and past the restart rate limit)
            there = (
                netchange.NEW_ADDRESS if here == netns.BROWSER_ADDRESS else netns.BROWSER_ADDRESS
            )
            moved_ms = time.time() * 1000.0
            netchange.move_address(media, old=here, new=there)
            old, here = here, there
            time.sleep(9.0)  # the gap is read afterwards from the timeline
            gap = netchange.longest_gap_ms(listener.evaluate("window.__rx"), moved_ms)
            gaps.append(round(gap, 1) if gap != float("inf") else float("inf"))
            ice = talker.evaluate("window.__ice")
            switched.append(netchange.switched_ms(ice, old, moved_ms))
            asked.append(netchange.asked_ms(talker.evaluate(netchange.DIAG_EVENTS), moved_ms))
            listener_asked.append(
                netchange.asked_ms(listener.evaluate(netchange.DIAG_EVENTS), moved_ms)
            )
    finally:
        netchange.restore(current=here)
        for page in (talker, listener):
            with contextlib.suppress(Exception):
                page.context.browser.close()
    return {"moves": moves, **_gaps(gaps), "switched_ms": switched, "asked_ms": asked,
            "listener_asked_ms": listener_asked}  # fmt: skip


def _stuck(pages: dict[str, Any], url: str, data: Path, log: IO[str]) -> None:
    """Why pages did not connect: each one's join and ICE state (:data:`netchange.PAGE_STATE`),
    the namespace's addresses, the server's media counters and its log's tail."""
    for name, page in pages.items():
        try:
            state = page.evaluate(netchange.PAGE_STATE)
        except Exception as exc:  # a crashed page says so
            state = {"error": str(exc)}
        state["problems"] = page_problems(page)
        print(f"bench network: {name} stuck: {state}", file=log, flush=True)
    addrs = subprocess.run(["ip", "-brief", "addr"], capture_output=True, text=True, check=False)
    print(f"bench network: addresses: {' | '.join(addrs.stdout.splitlines())}", file=log)
    with contextlib.suppress(Exception):
        counters = [
            line for line in get_text(f"{url}/metrics", timeout=2)[1].splitlines()
            if line.startswith(("voice_media_drops_total", "voice_media_transports ",
                                "voice_media_stun", "voice_media_dtls"))
        ]  # fmt: skip
        print(f"bench network: server media: {' | '.join(counters)}", file=log)
    with contextlib.suppress(OSError):
        tail = (data / "server.log").read_text(errors="replace").splitlines()[-15:]
        print("bench network: server log tail:\n  " + "\n  ".join(tail), file=log, flush=True)


def _both_connected(pages: dict[str, Any], url: str, data: Path, log: IO[str]) -> None:
    """Wait for the pages to join with media connected; when they do not, say why
    (:func:`_stuck`) and raise as :func:`wait_until` does."""
    try:
        wait_until(lambda: all(connected(p) for p in pages.values()), 90, "both browsers")
    except RuntimeError:
        _stuck(pages, url, data, log)
        raise


def _gaps(gaps: list[float]) -> dict[str, Any]:
    finite = sorted(g for g in gaps if g != float("inf"))
    return {
        "gaps_ms": [g if g != float("inf") else None for g in gaps],
        "gap_ms": max(gaps) if gaps and len(finite) == len(gaps) else None,  # the worst
        "gap_p50_ms": finite[(len(finite) - 1) // 2] if finite else None,  # the lower median
        "gap_p95_ms": finite[-(-len(finite) * 95 // 100) - 1] if finite else None,  # nearest rank
        "resumed": len(finite),
    }


def _handover(
    pw: Any, url: str, data: Path, files: tuple[Path, Path], args: tuple[str, ...], moves: int,
    media: int, log: IO[str] = sys.stderr,
) -> dict[str, Any]:  # fmt: skip
    """``moves`` Wi-Fi → LTE handovers (:func:`netchange.cut_address`), each with fresh pages
    started while both networks are up; the gap at the listener."""
    bursts, silence = files
    gaps: list[float] = []
    switched: list[float | None] = []
    heard: list[float | None] = []
    asked: list[float | None] = []
    listener_asked: list[float | None] = []
    for n in range(moves):
        netchange.add_second_network()
        cut = None
        pages: list[Any] = []
        try:
            listener = open_page(pw, url, join_token(data, "listener"), silence, args)
            pages.append(listener)
            talker = open_page(pw, url, join_token(data, "talker"), bursts, args)
            pages.append(talker)
            started = time.monotonic()
            try:
                _both_connected({"listener": listener, "talker": talker}, url, data, log)
            except RuntimeError:  # counted as a handover never resumed; the others still run
                print(f"bench network: handover {n + 1}: timed out waiting for both browsers",
                      file=log, flush=True)  # fmt: skip
                gaps.append(float("inf"))
                for times in (switched, heard, asked, listener_asked):
                    times.append(None)
                continue
            print(f"bench network: handover {n + 1}: both browsers connected in "
                  f"{time.monotonic() - started:.1f} s", file=log, flush=True)  # fmt: skip
            listener.evaluate(netchange.RX_TIMELINE)
            for page in pages:
                page.evaluate(netchange.ICE_TIMELINE)
            time.sleep(4.0)  # talk on the first network
            cut = talker.evaluate(netchange.SELECTED_ADDRESS) or netns.BROWSER_ADDRESS
            cut_ms = time.time() * 1000.0
            netchange.cut_address(media, cut)
            time.sleep(9.0)  # the gap is read afterwards from the timeline
            gap = netchange.longest_gap_ms(listener.evaluate("window.__rx"), cut_ms)
            gaps.append(round(gap, 1) if gap != float("inf") else float("inf"))
            switched.append(netchange.switched_ms(talker.evaluate("window.__ice"), cut, cut_ms))
            heard.append(netchange.switched_ms(listener.evaluate("window.__ice"), cut, cut_ms))
            asked.append(netchange.asked_ms(talker.evaluate(netchange.DIAG_EVENTS), cut_ms))
            listener_asked.append(
                netchange.asked_ms(listener.evaluate(netchange.DIAG_EVENTS), cut_ms)
            )
        finally:
            for page in pages:
                with contextlib.suppress(Exception):
                    page.context.browser.close()
            netchange.restore(current=cut or netns.BROWSER_ADDRESS)
    return {"handovers": moves, **_gaps(gaps), "switched_ms": switched,
            "listener_switched_ms": heard, "asked_ms": asked,
            "listener_asked_ms": listener_asked}  # fmt: skip


@contextlib.contextmanager
def _jittered(media: int, jitter_ms: float, direction: str) -> Any:
    """Every phone's UDP to the media port through a :class:`jitter.JitterRelay` meanwhile."""
    up = jitter_ms if direction in ("up", "both") else 0.0
    down = jitter_ms if direction in ("down", "both") else 0.0
    relay = jitter.JitterRelay(("127.0.0.1", media), up, down).start()
    subprocess.run(["nft", "delete", "table", "ip", jitter.TABLE], capture_output=True,
                   check=False)  # fmt: skip
    turnrelay.nft(jitter.rules(media, relay.port))
    try:
        yield relay
    finally:
        subprocess.run(["nft", "delete", "table", "ip", jitter.TABLE], capture_output=True,
                       check=False)  # fmt: skip
        relay.stop()


def run_network(opts: NetworkOptions, log: IO[str] = sys.stderr) -> dict[str, Any]:
    """Run every (path, loss) condition in one namespace; the rows and their summary."""
    reason = netns.available() or browser.missing() or turnrelay.missing()
    if not reason and opts.speech_seconds > 0:
        reason = speechscore.available()
    if reason:
        raise RuntimeError(reason)
    from playwright.sync_api import sync_playwright

    from voice_server.tlscert import ensure_self_signed

    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    network_change: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp_name, netns.isolated():
        tmp = Path(tmp_name)
        files = (tmp / "bursts.wav", tmp / "silence.wav")
        write_bursts(files[0], opts.tone_ms, opts.period)
        write_bursts(files[1], 0, 1.0)
        speech = None
        if opts.speech_seconds > 0:
            sentences, rate = speechscore.write_reference(tmp / "speech.wav")
            speech = Speech(tmp / "speech.wav", sentences, rate)
        tls = ensure_self_signed(tmp / "turn", [RELAY])
        with contextlib.ExitStack() as stack:
            turn = stack.enter_context(
                turnrelay.running_turn(
                    tmp / "turn", tls.cert, tls.key, tls.cert, address=RELAY, port=TURN_PORT
                )
            )
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                media = int(s.getsockname()[1])
            pw = stack.enter_context(sync_playwright())
            for red in opts.reds:
                env = {**turn.server_env(), "VOICE_AUDIO_RED": "true" if red else "false"}
                data = tmp / ("data-red" if red else "data-nored")  # a server of its own
                data.mkdir()
                with bench_server(data, env, media_port=media) as url:
                    for path in opts.paths:
                        for pattern, loss, way in conditions(opts):
                            _apply(rules(path, loss, media, way, pattern))
                            print(f"bench network: {path}, {loss:.0%} {pattern} loss {way}, "
                                  f"RED {red}", file=log, flush=True)  # fmt: skip
                            args = turn.chromium_args
                            for row in _condition(
                                pw, url, data, files, args, opts, path, tls.cert, speech, log
                            ):
                                rows.append(
                                    {"path": path, "loss": loss, "pattern": pattern,
                                     "direction": way, "red": red, "jitter_ms": 0.0, **row}
                                )  # fmt: skip
                        if path != "udp" or opts.jitter_ms <= 0:
                            continue
                        for way in opts.directions:
                            print(f"bench network: udp, ±{opts.jitter_ms:.0f} ms jitter {way}, "
                                  f"RED {red}", file=log, flush=True)  # fmt: skip
                            _apply(rules(path, 0.0, media))
                            with _jittered(media, opts.jitter_ms, way):
                                got = _condition(pw, url, data, files, turn.chromium_args, opts,
                                                 path, tls.cert, speech, log)  # fmt: skip
                            rows += [
                                {"path": path, "loss": 0.0, "pattern": "jitter", "direction": way,
                                 "red": red, "jitter_ms": opts.jitter_ms, **row} for row in got
                            ]  # fmt: skip
                    if red and opts.moves and network_change is None:
                        _apply(rules("udp", 0.0, media))
                        talk = (tmp / "talk.wav", files[1])
                        write_bursts(talk[0], TALK_MS, TALK_PERIOD)
                        print("bench network: network changes", file=log, flush=True)
                        network_change = {"moves": 0, **_gaps([])}
                        if "move" in opts.changes:
                            network_change = _network_change(
                                pw, url, data, talk, turn.chromium_args, opts.moves, media, log
                            )
                        if "handover" in opts.changes:
                            print("bench network: handovers", file=log, flush=True)
                            network_change["handover"] = _handover(
                                pw,
                                url,
                                data,
                                talk,
                                turn.chromium_args,
                                opts.moves,
                                media,
                                log,
                            )
    return {
        "gilbert": GILBERT,
        "jitter_ms": opts.jitter_ms or None,  # user-space relay (jitter.py): no netem here
        "jitter_rows": sum(1 for r in rows if r["pattern"] == "jitter"),
        "bursts_per_row": opts.bursts,
        "period_s": opts.period,
        "tone_ms": opts.tone_ms,
        "load": {"before": list(load_before), "after": list(os.getloadavg())},
        "cpus": os.cpu_count(),
        "rows": rows,
        "network_change": network_change,
        "summary": summarize(rows) | change_targets(network_change),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each path's p95 over UDP's at the same loss, and the issue's targets met or not."""
    p95 = {
        (r["path"], r["loss"]): r.get("p95_ms")
        for r in rows
        if r["receiver"] == "browser"
        and r.get("red", True)
        and r.get("direction", "both") == "both"
        and r.get("pattern", "random") == "random"
    }
    out: dict[str, Any] = {}
    for (path, loss), value in sorted(p95.items()):
        udp = p95.get(("udp", loss))
        if path == "udp" or value is None or udp is None:
            continue
        over = round(value - udp, 1)
        key = f"{path}_over_udp_p95_ms_at_{round(loss * 100)}pct"
        out[key] = over
        target = TARGET_0 if loss == 0 else TARGET_LOSS_TCP if path == "tcp" else None
        if target is not None:
            out[key.replace("_ms_", "_target_met_")] = over <= target
    return out | _loss_targets(rows)


def change_targets(change: dict[str, Any] | None) -> dict[str, Any]:
    """Issue #22's network-change target, a gap ≤ 1 s p95 in Chromium, for each scenario run:
    the address move (``network_change.gap_ms``'s p95) and the handover. A scenario with a
    change that never resumed misses it."""
    out: dict[str, Any] = {}
    for name, figures in (("move", change), ("handover", (change or {}).get("handover"))):
        if not figures or not figures.get("gaps_ms"):
            continue
        p95 = figures.get("gap_p95_ms")
        resumed = figures.get("resumed") == len(figures["gaps_ms"])
        out[f"{name}_gap_p95_ms"] = p95
        out[f"{name}_target_met"] = resumed and p95 is not None and p95 <= TARGET_CHANGE_MS
    return out


def _loss_targets(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Issue #22's targets, on UDP with random loss on the talker's uplink and RED on, at the
    browser listener: at 10 % the concealed ratio ≤ 2 % and STOI within 0.05 of the 0 % row."""
    quality = {
        r["loss"]: r.get("quality") or {}
        for r in rows
        if r["path"] == "udp" and r["receiver"] == "browser" and r.get("red", True)
        and r.get("pattern", "random") == "random"
        and (r["loss"] == 0 or r.get("direction", "both") == "up")
    }  # fmt: skip
    out: dict[str, Any] = {}
    at10 = quality.get(0.1)
    if at10 is None:
        return out
    if at10.get("concealed_ratio") is not None:
        out["red_concealed_ratio_at_10pct_up"] = at10["concealed_ratio"]
        out["red_concealed_target_met"] = at10["concealed_ratio"] <= TARGET_CONCEALED
    clean = quality.get(0.0, {}).get("stoi")
    if clean is not None and at10.get("stoi") is not None:
        out["red_stoi_drop_at_10pct_up"] = round(clean - at10["stoi"], 3)
        out["red_stoi_target_met"] = clean - at10["stoi"] <= TARGET_STOI_DROP
    return out


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"{'path':<10} {'loss':>5} {'pattern':<7} {'dir':<4} {'RED':>4} {'receiver':<8} "
        f"{'bursts':>6} {'missed':>6} {'p50 ms':>8} {'p95 ms':>8} {'concealed':>9} {'raw':>7} "
        f"{'STOI':>5} {'PESQ':>4} {'utt':>3}"
    ]
    for r in result["rows"]:
        fmt = {k: "-" if r.get(k) is None else f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms")}
        paths = r["observed_paths"]
        seen = "" if paths is None or set(paths) == {r["path"]} else f"  (seen: {paths})"
        quality = r.get("quality") or {}
        pct = {
            k: "-" if quality.get(k) is None else f"{quality[k]:.2%}"
            for k in ("concealed_ratio", "concealed_ratio_raw")
        }
        red = "on" if r.get("red", True) else "off"
        score = {
            k: "-" if quality.get(k) is None else f"{quality[k]:{f}}"
            for k, f in (("stoi", ".3f"), ("pesq_wb", ".2f"), ("utterances", "d"))
        }
        lines.append(
            f"{r['path']:<10} {r['loss']:>5.0%} {r.get('pattern', 'random'):<7} "
            f"{r.get('direction', 'both'):<4} {red:>4} {r['receiver']:<8} {r['bursts']:>6} "
            f"{r['missed']:>6} {fmt['p50_ms']:>8} {fmt['p95_ms']:>8} "
            f"{pct['concealed_ratio']:>9} {pct['concealed_ratio_raw']:>7} "
            f"{score['stoi']:>5} {score['pesq_wb']:>4} {score['utterances']:>3}{seen}"
        )
    change = result.get("network_change")
    if change:
        if change.get("moves"):
            lines.append(
                f"network change (address move): gaps {change['gaps_ms']} ms, p50 "
                f"{change.get('gap_p50_ms')}, p95 {change.get('gap_p95_ms')}, worst "
                f"{change['gap_ms']}; talker's pair switched at {change.get('switched_ms')} ms; "
                f"restart asked at {change.get('asked_ms')} ms (talker), "
                f"{change.get('listener_asked_ms')} ms (listener)"
            )
        handover = change.get("handover")
        if handover:
            lines.append(
                f"network change (handover, second network up): gaps {handover['gaps_ms']} ms, "
                f"p50 {handover.get('gap_p50_ms')}, p95 {handover.get('gap_p95_ms')}, "
                f"worst {handover['gap_ms']}; pair switched at {handover['switched_ms']} ms "
                f"(talker), {handover.get('listener_switched_ms')} ms (listener); restart asked "
                f"at {handover.get('asked_ms')} ms (talker), "
                f"{handover.get('listener_asked_ms')} ms (listener)"
            )
    for key, value in result["summary"].items():
        lines.append(f"{key}: {value}")
    load = result["load"]
    lines.append(
        f"load average before {load['before'][0]:.2f}, after {load['after'][0]:.2f} "
        f"({result['cpus']} CPUs)"
    )
    return "\n".join(lines)
