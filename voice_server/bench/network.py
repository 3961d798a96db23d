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
same run); each row has ``red`` and ``quality.concealed_ratio``: the listener's concealed samples
over the samples it received during the timed window (Chromium's ``inbound-rtp`` stats). Only
random loss on both directions of the access leg (no bursty/Gilbert rows, no jitter, no headset
receiver, no STOI yet); the path summary compares RED-on rows only. ``network_change``: with
RED on and UDP, ``--moves`` times the phones' address moves mid-talk (:mod:`netchange`) and
``gap_ms`` is the worst gap at the listener (``gaps_ms`` each).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from voice_server.bench import browser, netchange, netns, turnrelay
from voice_server.bench.latency import (
    Headset,
    PathResult,
    bench_server,
    connected,
    join_token,
    match_onsets,
    open_page,
    wait_until,
    write_bursts,
)

__all__ = ["PATHS", "NetworkOptions", "format_summary", "rules", "run_network", "summarize"]

PATHS = ("udp", "tcp", "turn-tls")
RELAY = "127.0.0.3"
TURN_PORT = 443
TABLE = "voice_bench_network"
TARGET_0 = 30.0  # ms over UDP's p95 at 0 % loss, TCP and TURN-TLS
TARGET_LOSS_TCP = 80.0  # ms over UDP's p95 at 2 % loss, TCP


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


CONCEALMENT = """async () => {
  const pc = window.voiceDiag.call.pc;
  let concealed = 0, samples = 0;
  if (pc) (await pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      concealed += s.concealedSamples || 0; samples += s.totalSamplesReceived || 0;
    }
  });
  return [concealed, samples];
}"""


def rules(path: str, loss: float, media: int) -> str:
    """The nftables table forcing ``path`` and dropping ``loss`` of the access leg's packets."""
    force = {
        "udp": [f"tcp dport {media} drop", f"ip saddr {RELAY} udp dport {media} drop"],
        "tcp": [f"udp dport {media} drop"],
        "turn-tls": [f"ip saddr != {RELAY} udp dport {media} drop", f"tcp dport {media} drop"],
    }[path]
    permille = round(loss * 1000)
    lossy: list[str] = []
    if permille > 0:
        proto, port = ("tcp", TURN_PORT) if path == "turn-tls" else (path, media)
        lossy = [
            f"{proto} {way} {port} numgen random mod 1000 < {permille} counter drop"
            for way in ("dport", "sport")
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
) -> list[dict[str, Any]]:
    """One (path, loss) condition: a fresh talker, listener and (but on TCP, which aiortc lacks)
    listening headset client, timed; the rows' figures (browser, then headset)."""
    bursts, silence = files
    headset = None
    if path != "tcp":
        token = join_token(data, "headset")
        headset = Headset(url, token, None, False, ("--ca-file", str(ca)))
    listener = open_page(pw, url, join_token(data, "listener"), silence, args)
    talker = open_page(pw, url, join_token(data, "talker"), bursts, args)
    try:
        wait_until(lambda: connected(listener) and connected(talker), 90, "both browsers")
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
        c0, n0 = listener.evaluate(CONCEALMENT)
        time.sleep(opts.bursts * opts.period + 1.5)
        c1, n1 = listener.evaluate(CONCEALMENT)
        sent = sorted(t for t in talker.evaluate("window.voiceDiag.txOnsets") if t >= start_ms)
        rx: list[float] = listener.evaluate("Object.values(window.voiceDiag.rxOnsets).flat()")
        ratio = round((c1 - c0) / (n1 - n0), 4) if n1 > n0 else None
        receivers: list[tuple[str, list[float], list[str | None] | None, Any]] = [
            ("browser", rx, observed, {"concealed_ratio": ratio})
        ]
        if headset is not None:  # the rules leave it no other path
            receivers.append(("headset", headset.onsets_ms, None, None))
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
    media: int,
) -> dict[str, Any]:  # fmt: skip
    """``moves`` address changes mid-talk (:mod:`netchange`), each gap at the listener."""
    bursts, silence = files
    listener = open_page(pw, url, join_token(data, "listener"), silence, args)
    talker = open_page(pw, url, join_token(data, "talker"), bursts, args)
    gaps: list[float] = []
    here = netns.BROWSER_ADDRESS
    try:
        wait_until(lambda: connected(listener) and connected(talker), 90, "both browsers")
        listener.evaluate(netchange.RX_TIMELINE)
        for _ in range(moves):
            time.sleep(4.0)  # talk on the current path (and past the restart rate limit)
            there = (
                netchange.NEW_ADDRESS if here == netns.BROWSER_ADDRESS else netns.BROWSER_ADDRESS
            )
            moved_ms = time.time() * 1000.0
            netchange.move_address(media, old=here, new=there)
            here = there
            time.sleep(9.0)  # the gap is read afterwards from the timeline
            gap = netchange.longest_gap_ms(listener.evaluate("window.__rx"), moved_ms)
            gaps.append(round(gap, 1) if gap != float("inf") else float("inf"))
    finally:
        netchange.restore(current=here)
        for page in (talker, listener):
            with contextlib.suppress(Exception):
                page.context.browser.close()
    finite = [g for g in gaps if g != float("inf")]
    return {
        "moves": moves,
        "gaps_ms": [g if g != float("inf") else None for g in gaps],
        "gap_ms": max(gaps) if gaps and len(finite) == len(gaps) else None,  # the worst move
        "resumed": len(finite),
    }


def run_network(opts: NetworkOptions, log: IO[str] = sys.stderr) -> dict[str, Any]:
    """Run every (path, loss) condition in one namespace; the rows and their summary."""
    reason = netns.available() or browser.missing() or turnrelay.missing()
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
                        for loss in opts.losses:
                            _apply(rules(path, loss, media))
                            print(f"bench network: {path}, {loss:.0%} loss, RED {red}",
                                  file=log, flush=True)  # fmt: skip
                            args = turn.chromium_args
                            for row in _condition(pw, url, data, files, args, opts, path, tls.cert):
                                rows.append(
                                    {"path": path, "loss": loss, "pattern": "random", "red": red,
                                     **row}
                                )  # fmt: skip
                    if red and opts.moves and network_change is None:
                        _apply(rules("udp", 0.0, media))
                        print("bench network: network changes", file=log, flush=True)
                        network_change = _network_change(
                            pw, url, data, files, turn.chromium_args, opts.moves, media
                        )
    return {
        "bursts_per_row": opts.bursts,
        "period_s": opts.period,
        "tone_ms": opts.tone_ms,
        "load": {"before": list(load_before), "after": list(os.getloadavg())},
        "cpus": os.cpu_count(),
        "rows": rows,
        "network_change": network_change,
        "summary": summarize(rows),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each path's p95 over UDP's at the same loss, and the issue's targets met or not."""
    p95 = {
        (r["path"], r["loss"]): r.get("p95_ms")
        for r in rows
        if r["receiver"] == "browser" and r.get("red", True)
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
    return out


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"{'path':<10} {'loss':>5} {'RED':>4} {'receiver':<8} {'bursts':>6} {'missed':>6} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'concealed':>9}"
    ]
    for r in result["rows"]:
        fmt = {k: "-" if r.get(k) is None else f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms")}
        paths = r["observed_paths"]
        seen = "" if paths is None or set(paths) == {r["path"]} else f"  (seen: {paths})"
        concealed = (r.get("quality") or {}).get("concealed_ratio")
        red = "on" if r.get("red", True) else "off"
        lines.append(
            f"{r['path']:<10} {r['loss']:>5.0%} {red:>4} {r['receiver']:<8} {r['bursts']:>6} "
            f"{r['missed']:>6} {fmt['p50_ms']:>8} {fmt['p95_ms']:>8} "
            f"{'-' if concealed is None else f'{concealed:.2%}':>9}{seen}"
        )
    change = result.get("network_change")
    if change:
        lines.append(f"network change: gaps {change['gaps_ms']} ms, worst {change['gap_ms']}")
    for key, value in result["summary"].items():
        lines.append(f"{key}: {value}")
    load = result["load"]
    lines.append(
        f"load average before {load['before'][0]:.2f}, after {load['after'][0]:.2f} "
        f"({result['cpus']} CPUs)"
    )
    return "\n".join(lines)
