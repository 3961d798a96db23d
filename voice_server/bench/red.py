"""``voice-server bench red``: the forwarding CPU per copy with audio RED on, against off.

In this process, outside any event loop: two real :class:`~voice_server.media.router.Router`
instances with ``listeners`` listeners each (their own libsrtp AES-GCM sessions, one loopback
UDP socket per listener, the server's send path: native ``sendmmsg`` where it was built) and
one talker:

- *off*: the talker sends plain Opus, no listener negotiated RED (the server before RED, or
  ``VOICE_AUDIO_RED=false``): one variant, one fan-out;
- *on*: the talker sends RED (each packet the current Opus frame and the previous one, as
  Chromium does), ``red_share`` of the listeners negotiated RED (they get it as sent), the
  others get the primary frame the server extracts: two variants built per packet, two
  fan-outs.

Blocks of ``packets`` talker packets alternate between the two (paced at 50 packets/s, like a
talker), ``rounds`` times each, so the machine's load drifts over both alike. Reported per
mode: CPU µs per forwarded copy (``time.process_time`` over the ``on_rtp`` calls ÷ copies
sent), median and p90 over the blocks; ``ratio`` = on ÷ off of the medians (the issue's target:
≤ 1.1).
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from dataclasses import dataclass
from typing import Any

from voice_server.bench.floor import drain, loopback_sockets
from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.red import OPUS_PT, RED_PT, build_payload
from voice_server.media.router import Member, Router
from voice_server.media.rtp import build_rtp
from voice_server.media.srtp import SRTP_AEAD_AES_128_GCM, make_sessions
from voice_server.talk.detector import TalkRules

__all__ = ["TARGET_RATIO", "format_summary", "run_red_bench"]

TARGET_RATIO = 1.1
PACKETS_PER_SECOND = 50


@dataclass(eq=False)
class _Peer:
    session_id: str
    remote: tuple[str, int] | None
    red: bool
    tx: Any = None
    media_ready: bool = True
    level_ext_id: int = 1


class _Events:
    def talk_started(self, *_: Any) -> None: ...
    def talk_stopped(self, *_: Any) -> None: ...
    def slot_busy(self, *_: Any) -> None: ...
    def preempted(self, *_: Any) -> None: ...


def _router(sender: socket.socket, addrs: list[tuple[str, int]], red_share: float) -> Any:
    counters = MediaCounters()

    def sendto(data: bytes, addr: tuple[str, int]) -> None:
        sender.sendto(data, addr)

    router = Router(
        "bench", slot_ssrcs=(1,), payload_type=OPUS_PT,
        rules=TalkRules(attack_ms=40, hangover_ms=600), preroll_packets=5, events=_Events(),
        sendto=sendto, counters=counters, histogram=LatencyHistogram(),
        fileno=sender.fileno,
    )  # fmt: skip
    red_count = round(len(addrs) * red_share)
    for i, addr in enumerate(addrs):
        tx = make_sessions(SRTP_AEAD_AES_128_GCM, (os.urandom(28), os.urandom(28)))[1]
        router.add(_Peer(f"l{i}", addr, i < red_count, tx))
    talker = router.add(_Peer("talker", None, False, None))
    router.refresh_listeners()
    assert isinstance(talker, Member)
    return router, talker, counters


def run_red_bench(
    listeners: int = 200, red_share: float = 0.5, packets: int = 100, rounds: int = 10
) -> dict[str, Any]:
    """See the module docstring."""
    from voice_server.sim.audio import opus_frames

    frames = opus_frames()
    sender, receivers = loopback_sockets(2 * listeners)
    try:
        addrs = [r.getsockname() for r in receivers]
        modes = {
            "off": _router(sender, addrs[:listeners], 0.0),
            "on": _router(sender, addrs[listeners:], red_share),
        }
        seq = {"off": 0, "on": 0}
        per_copy: dict[str, list[float]] = {"off": [], "on": []}
        period = 1.0 / PACKETS_PER_SECOND
        for _ in range(rounds):
            for mode, (_router_, talker, counters) in modes.items():
                cpu = 0.0
                before = counters.packets_out
                for _k in range(packets):
                    s = seq[mode] = seq[mode] + 1
                    frame = frames[s % len(frames)]
                    if mode == "on":
                        prev = frames[(s - 1) % len(frames)]
                        pt, payload = RED_PT, build_payload(frame, [(960, prev)])
                    else:
                        pt, payload = OPUS_PT, frame
                    packet = build_rtp(payload_type=pt, seq=s, timestamp=s * 960, ssrc=7,
                                       payload=payload, audio_level=(True, 20))  # fmt: skip
                    t0 = time.perf_counter_ns()
                    c0 = time.process_time()
                    _router_.on_rtp(talker, packet, t0)
                    cpu += time.process_time() - c0
                    drain(receivers)
                    time.sleep(max(0.0, period - (time.perf_counter_ns() - t0) / 1e9))
                copies = counters.packets_out - before
                per_copy[mode].append(cpu * 1e6 / max(1, copies))
    finally:
        sender.close()
        for r in receivers:
            r.close()
    result: dict[str, Any] = {
        "listeners": listeners,
        "red_share": red_share,
        "packets_per_block": packets,
        "rounds": rounds,
    }
    for mode, values in per_copy.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
        result[mode] = {
            "cpu_us_per_copy_median": round(statistics.median(ordered), 3),
            "cpu_us_per_copy_p90": round(p90, 3),
        }
    off = result["off"]["cpu_us_per_copy_median"]
    result["ratio"] = round(result["on"]["cpu_us_per_copy_median"] / off, 3) if off else None
    result["target_ratio"] = TARGET_RATIO
    result["load"] = os.getloadavg()
    return result


def format_summary(result: dict[str, Any]) -> str:
    on, off = result["on"], result["off"]
    return (
        f"bench red: {result['listeners']} listeners ({result['red_share']:.0%} with RED), "
        f"{result['rounds']} blocks of {result['packets_per_block']} packets per mode\n"
        f"  RED off: {off['cpu_us_per_copy_median']} µs/copy (p90 "
        f"{off['cpu_us_per_copy_p90']})\n"
        f"  RED on:  {on['cpu_us_per_copy_median']} µs/copy (p90 {on['cpu_us_per_copy_p90']})\n"
        f"  ratio on/off: {result['ratio']} (target <= {result['target_ratio']}); load "
        + " ".join(f"{x:.2f}" for x in result["load"])
    )
