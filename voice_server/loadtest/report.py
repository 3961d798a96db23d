"""The load test's result: figures from the server's own counters, ``/proc`` and the generator.

Pure module: :func:`build_report` turns what the coordinator collected (two scrapes of
``/metrics`` around the measured window, ``/proc`` readings, the workers' snapshots) into the
JSON document; :mod:`voice_server.loadtest.summary` prints it. How each figure is made:

- ``participants_joined``: participants whose DTLS-SRTP came up; ``participants_heard``: those
  that, in the window, received packets from every talker of their channel (a talker does not
  hear itself);
- ``join_ms``: WebSocket open → first RTP packet received, for every participant that joined a
  channel where another talker had been media-connected for at least
  :data:`TALKER_SETTLE_MS` (so the time measures joining, not waiting for someone to talk);
  ``media_ms``: WebSocket open → SRTP keys in place, for all;
- ``server.loss`` = 1 − copies ÷ (routed packets × (per-channel − 1)), from the deltas of
  ``voice_media_packets_out_total`` and ``voice_media_packets_routed_total``; kernel drops on
  the server's socket count in ``loss_including_socket_drops``;
- ``server.added_latency_ms``: the delta of the server's ``voice_media_forward_seconds``
  histogram (kernel arrival → send; see :mod:`voice_server.media.fanout` for how copies are
  observed);
- ``server.cpu_cores``/``rss_mb``: ``/proc/<pid>`` of the server (the transcriber sidecar, a
  child, is reported apart); ``generator.cpu_cores``: the workers and the coordinator, summed;
- ``generator.loss``/``jitter_ms``: from the sequence numbers and arrival times the simulated
  listeners saw (RFC 3550); ``generator.e2e_latency_ms``: talker send → listener receive;
- ``valid`` is false (with ``valid_reasons``) when the generator fell behind (more than 1 % of
  its sends late, or its tick lag p99 over 10 ms), its sockets dropped or failed, or other
  processes of the machine used more than :data:`MAX_OTHER_CORES` during the window (busy time
  from ``/proc/stat`` minus the server, its sidecar, the generator and soft interrupts: the
  kernel delivers loopback datagrams there, charged to no process, ``machine.softirq_cores``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from voice_server.bench import prom
from voice_server.bench.stats import summarize
from voice_server.histogram import LatencyHistogram
from voice_server.loadtest.plan import LoadPlan

__all__ = ["MAX_OTHER_CORES", "TALKER_SETTLE_MS", "TARGETS", "RunData", "build_report"]

TALKER_SETTLE_MS = 100  # talk detection attack (40 ms) + pacing + the first forwarded packet
MAX_LATE_FRACTION = 0.01
MAX_TICK_LAG_P99_MS = 10.0
MAX_OTHER_CORES = 0.25
HIST = "voice_media_forward_seconds"
TARGETS = {
    "loss": 0.0,
    "added_latency_p99_ms": 5.0,
    "cpu_cores": 1.0,
    "rss_mb": 500.0,
    "join_p95_ms": 300.0,
}
_DROP_REASONS = (
    "send_error",
    "not_ready",
    "bad_srtp",
    "bad_rtp",
    "stale",
    "slot_busy",
    "unknown_source",
)
_TRANSCRIPTION_PREFIXES = (
    "voice_tap_",
    "voice_spool_",
    "voice_transcriber_",
    "voice_transcription_",
    "voice_calllog_",
)


@dataclass
class ProcFigures:
    """CPU over the window and memory at its end of one or more processes."""

    cpu_seconds: float = 0.0
    cores: float = 0.0
    rss_mb: float = 0.0
    fds: int | None = None
    threads: int | None = None
    pids: list[int] = field(default_factory=list)


@dataclass
class RunData:
    plan: LoadPlan
    window_seconds: float
    m0: prom.Samples
    m1: prom.Samples
    server: ProcFigures | None
    sidecar: ProcFigures | None
    generator: ProcFigures
    machine_cores: float
    softirq_cores: float
    cpus: int
    server_socket_drops: int | None
    generator_socket_drops: int
    marks: list[dict[str, int]]  # worker totals at the start of the window
    snapshots: list[dict[str, Any]]  # worker snapshots at its end
    soak: dict[str, Any] | None = None
    after_leave: dict[str, float] | None = None


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _hist_ms(h: LatencyHistogram) -> dict[str, Any]:
    out = h.summary_ms((50, 95, 99))
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}


def _dist(values: list[float], scale: float = 1.0) -> dict[str, Any]:
    s = summarize(values, scale=scale, ps=(50, 95, 99))
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()}


def _join_figures(plan: LoadPlan, people: list[dict[str, Any]]) -> dict[str, Any]:
    ready: dict[str, list[tuple[int, int]]] = {}
    for p in people:
        if p["talker"] and p["media_ns"] > 0:
            ready.setdefault(p["channel"], []).append((p["index"], p["media_ns"]))
    join_ms: list[float] = []
    no_audio = 0
    settle = TALKER_SETTLE_MS * 1_000_000
    for p in people:
        if p["ws_open_ns"] < 0:
            continue
        talking = [t for i, t in ready.get(p["channel"], []) if i != p["index"]]
        if not talking or min(talking) + settle > p["ws_open_ns"]:
            continue
        if p["first_audio_ns"] > 0:
            join_ms.append((p["first_audio_ns"] - p["ws_open_ns"]) / 1e6)
        else:
            no_audio += 1
    opened = [p["ws_open_ns"] for p in people if p["ws_open_ns"] > 0]
    media = [p["media_ns"] for p in people if p["media_ns"] > 0]
    phase = (max(media) - min(opened)) / 1e9 if media and opened else 0.0
    return {
        "join_ms": {**_dist(join_ms), "no_audio": no_audio},
        "media_ms": _dist(
            [(p["media_ns"] - p["ws_open_ns"]) / 1e6 for p in people if p["media_ns"] > 0]
        ),
        "offer_ms": _dist(
            [(p["offer_ns"] - p["ws_open_ns"]) / 1e6 for p in people if p["offer_ns"] > 0]
        ),
        "join_phase_seconds": round(phase, 2),
        "joins_per_second": round(len(media) / phase, 1) if phase > 0 else None,
    }


def _generator(data: RunData, people: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    keys = set().union(*(s["totals"] for s in data.snapshots)) if data.snapshots else set()
    t1 = {k: sum(s["totals"].get(k, 0) for s in data.snapshots) for k in keys}
    t0 = {k: sum(m.get(k, 0) for m in data.marks) for k in keys}
    d = {k: t1[k] - t0.get(k, 0) for k in keys}
    latency = LatencyHistogram()
    lateness = LatencyHistogram()
    gc_pauses = LatencyHistogram()
    for s in data.snapshots:
        latency.merge(LatencyHistogram.from_dict(s["latency"]))
        lateness.merge(LatencyHistogram.from_dict(s["lateness"]))
        if "gc_pauses" in s:
            gc_pauses.merge(LatencyHistogram.from_dict(s["gc_pauses"]))
    jitter = [j for s in data.snapshots for j in s["jitter_ms"]]
    sent = d.get("sent", 0)
    late_fraction = d.get("late_sends", 0) / sent if sent else 0.0
    errors: Counter[str] = Counter(p["error"].split(":")[0] for p in people if p["error"])
    g = data.generator
    out = {
        "cpu_cores": round(g.cores, 4),
        "cpu_seconds": round(g.cpu_seconds, 3),
        "rss_mb": round(g.rss_mb, 1),
        "workers": data.plan.workers,
        "pids": g.pids,
        "sent": sent,
        "received": d.get("received", 0),
        "bytes_sent": d.get("bytes_sent", 0),
        "bytes_received": d.get("bytes_received", 0),
        "received_per_second": round(d.get("received", 0) / data.window_seconds, 1),
        "rtcp_received": d.get("rtcp_received", 0),  # sender reports (every 2 s per stream)
        "loss": round(d["lost"] / d["expected"], 6) if d.get("expected", 0) > 0 else None,
        "jitter_ms": {k: v for k, v in _dist(jitter).items() if k in ("p50", "p99", "max")},
        "e2e_latency_ms": _hist_ms(latency),
        "late_sends": d.get("late_sends", 0),
        "late_fraction": round(late_fraction, 6),
        "tick_lag_ms": _hist_ms(lateness),
        "gc_pause_ms": _hist_ms(gc_pauses),
        "socket_drops": data.generator_socket_drops,
        "socket_errors": d.get("socket_errors", 0),
        "srtp_errors": d.get("srtp_errors", 0),
        "srtp_verified": d.get("srtp_verified", 0),
        "join_errors": dict(errors),
        "reoffers": d.get("reoffers", 0),  # in the window: the server replaced transports
        "signaling_closed": sum(1 for p in people if p.get("signaling_closed")),
        "poller_events_per_drain": round(d.get("poller_events", 0) / d["poller_drains"], 2)
        if d.get("poller_drains")
        else None,  # shared receive socket: datagrams for no participant (late, after one left)
        "unattributed": d.get("shared_unknown", 0),
    }
    reasons = []
    if late_fraction > MAX_LATE_FRACTION:
        reasons.append(f"generator sent {late_fraction:.1%} of its packets late (> 10 ms)")
    lag99 = out["tick_lag_ms"].get("p99")
    if lag99 is not None and lag99 > MAX_TICK_LAG_P99_MS:
        reasons.append(f"generator pacing lag p99 {lag99:.1f} ms")
    if data.generator_socket_drops:
        reasons.append(f"generator sockets dropped {data.generator_socket_drops} datagrams")
    if out["socket_errors"]:
        reasons.append(f"generator socket errors: {out['socket_errors']}")
    return out, reasons


def _server(data: RunData, copies: int, routed: int) -> dict[str, Any]:
    m0, m1 = data.m0, data.m1

    def delta(name: str, **labels: str) -> int:
        return round(prom.value(m1, name, **labels) - prom.value(m0, name, **labels))

    expected = routed * data.plan.copies_per_routed_packet()
    missing = max(0, expected - copies)
    sock = data.server_socket_drops or 0
    fan = data.plan.copies_per_routed_packet()
    with_drops = (missing + sock * fan) / max(1, expected + sock * fan)
    w = data.window_seconds
    proc = data.server
    try:
        latency = _hist_ms(prom.histogram_delta(m0, m1, HIST))
    except ValueError:
        latency = {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "loss": round(missing / expected, 6) if expected else None,
        "loss_including_socket_drops": round(with_drops, 6) if expected else None,
        "added_latency_ms": latency,
        "cpu_cores": _round(proc.cores, 4) if proc else None,
        "cpu_us_per_copy": round(proc.cpu_seconds * 1e6 / copies, 3) if proc and copies else None,
        "processes": len(proc.pids) if proc else None,  # 1 + media workers (serve --workers N)
        "rss_mb": _round(proc.rss_mb, 1) if proc else None,
        "fds": proc.fds if proc else None,
        "threads": proc.threads if proc else None,
        "pid": proc.pids[0] if proc and proc.pids else None,
        "asyncio_tasks": prom.value(m1, "voice_asyncio_tasks"),
        "transports": prom.value(m1, "voice_media_transports"),
        "sessions": prom.value(m1, "voice_sessions", state="attached"),
        "copies": copies,
        "copies_per_second": round(copies / w, 1),
        "routed": routed,
        "expected_copies": expected,
        "packets_in_per_second": round(delta("voice_media_packets_in_total") / w, 1),
        "drops": {r: delta("voice_media_drops_total", reason=r) for r in _DROP_REASONS},
        "socket_drops": data.server_socket_drops,
        "signaling_overflows": delta("voice_signaling_send_overflows_total"),
        "transports_closed_consent": delta("voice_media_transports_closed_consent_total"),
        "gc_pause_ms": _gc(m0, m1),
        "dtls_failures": delta("voice_media_dtls_failures_total"),
    }


def _gc(m0: prom.Samples, m1: prom.Samples) -> dict[str, Any] | None:
    """The server's garbage-collection pauses in the window (they stop the event loop)."""
    try:
        h = prom.histogram_delta(m0, m1, "voice_gc_pause_seconds")
    except ValueError:
        return None
    out = _hist_ms(h)
    out["total"] = round(h.sum_us / 1000, 1)
    return out


def _transcription(data: RunData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (name, labels), v1 in sorted(data.m1.items()):
        if not name.startswith(_TRANSCRIPTION_PREFIXES) or name.endswith(("_bucket", "_sum")):
            continue
        key = name + "".join(f"_{v}" for _, v in labels)
        if name.endswith(("_total", "_count")):
            out[key] = round(v1 - data.m0.get((name, labels), 0.0))
        else:
            out[key] = v1
    try:
        spool = prom.histogram_delta(data.m0, data.m1, "voice_spool_close_seconds")
        out["spool_close_ms"] = _hist_ms(spool)
    except ValueError:
        pass
    s = data.sidecar
    out["sidecar"] = (
        {"cpu_cores": round(s.cores, 4), "rss_mb": round(s.rss_mb, 1), "pids": s.pids}
        if s
        else None
    )
    return out


def build_report(data: RunData) -> dict[str, Any]:
    """The result document (see the module docstring)."""
    plan = data.plan
    people = sorted(
        (p for s in data.snapshots for p in s["participants"]), key=lambda p: p["index"]
    )
    joined = sum(1 for p in people if p["joined"])
    heard = sum(
        1
        for p in people
        if p["joined"] and p["window_streams"] >= plan.expected_streams(p["talker"])
    )
    copies = round(
        prom.value(data.m1, "voice_media_packets_out_total")
        - prom.value(data.m0, "voice_media_packets_out_total")
    )
    routed = round(
        prom.value(data.m1, "voice_media_packets_routed_total")
        - prom.value(data.m0, "voice_media_packets_routed_total")
    )
    generator, reasons = _generator(data, people)
    server = _server(data, copies, routed)
    sidecar = data.sidecar.cores if data.sidecar else 0.0
    server_cores = data.server.cores if data.server else 0.0
    other = max(
        0.0,
        data.machine_cores - server_cores - sidecar - data.generator.cores - data.softirq_cores,
    )
    if other > MAX_OTHER_CORES:
        reasons.append(f"other processes used {other:.2f} cores of the machine")
    if data.server is None:
        reasons.append("the server process could not be measured (no pid)")
    joins = _join_figures(plan, people)
    result: dict[str, Any] = {
        "plan": plan.as_dict(),
        "participants_planned": plan.total,
        "participants_joined": joined,
        "participants_heard": heard,
        **joins,
        "window_seconds": round(data.window_seconds, 3),
        "server": server,
        "generator": generator,
        "transcription": _transcription(data) if plan.transcribe else None,
        "soak": data.soak,
        "after_leave": data.after_leave,
        "machine": {
            "cpus": data.cpus,
            "busy_cores": round(data.machine_cores, 3),
            "softirq_cores": round(data.softirq_cores, 3),
            "other_cores": round(other, 3),
        },
        "valid": not reasons,
        "valid_reasons": reasons,
    }
    result["targets"] = TARGETS
    result["meets_targets"] = _meets(result)
    result["participants"] = people
    return result


def _meets(r: dict[str, Any]) -> dict[str, bool | None]:
    s = r["server"]
    p99 = s["added_latency_ms"].get("p99")
    j95 = r["join_ms"].get("p95")
    return {
        "all_joined": r["participants_joined"] == r["participants_planned"],
        "all_heard": r["participants_heard"] == r["participants_planned"],
        "loss": None if s["loss"] is None else s["loss"] <= TARGETS["loss"],
        "added_latency_p99_ms": None if p99 is None else p99 <= TARGETS["added_latency_p99_ms"],
        "cpu_cores": None if s["cpu_cores"] is None else s["cpu_cores"] <= TARGETS["cpu_cores"],
        "rss_mb": None if s["rss_mb"] is None else s["rss_mb"] <= TARGETS["rss_mb"],
        "join_p95_ms": None if j95 is None else j95 <= TARGETS["join_p95_ms"],
    }
