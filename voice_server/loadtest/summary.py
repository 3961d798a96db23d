"""The human summary of a load test result (what ``voice-server loadtest`` prints)."""

from __future__ import annotations

from typing import Any

__all__ = ["format_medians", "format_summary"]


def _f(value: Any, spec: str = ".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def _mark(meets: dict[str, bool | None], key: str) -> str:
    ok = meets.get(key)
    return "n/a" if ok is None else ("ok" if ok else "MISSED")


def format_summary(r: dict[str, Any]) -> str:
    plan, s, g = r["plan"], r["server"], r["generator"]
    meets, t = r["meets_targets"], r["targets"]
    lat, j = s["added_latency_ms"], r["join_ms"]
    lines = [
        f"loadtest: {plan['channels']} channels x {plan['per_channel']} participants, "
        f"{plan['talkers']} talker(s) each, {r['window_seconds']:.1f} s measured, "
        f"transcription {'on' if plan['transcribe'] else 'off'}, "
        f"{plan['workers']} generator worker(s)",
        f"  joined {r['participants_joined']} of {r['participants_planned']} "
        f"({_mark(meets, 'all_joined')}), heard every talker: {r['participants_heard']} "
        f"({_mark(meets, 'all_heard')}); {_f(r['joins_per_second'], '.1f')} joins/s "
        f"(asked {plan['join_rate']:g})",
        f"  join (ws open -> first audio)  p50 {_f(j['p50'], '.0f')}  p95 {_f(j['p95'], '.0f')}"
        f"  max {_f(j['max'], '.0f')} ms, n = {j['count']}  "
        f"(target p95 <= {t['join_p95_ms']:g}: {_mark(meets, 'join_p95_ms')})",
        f"  server loss {_f(s['loss'], '.4%')} ({_mark(meets, 'loss')}), with socket drops "
        f"{_f(s['loss_including_socket_drops'], '.4%')}; {s['copies_per_second']:.0f} copies/s",
        f"  server added latency  p50 {_f(lat['p50'], '.3f')}  p95 {_f(lat['p95'], '.3f')}  "
        f"p99 {_f(lat['p99'], '.3f')} ms  (target p99 <= {t['added_latency_p99_ms']:g}: "
        f"{_mark(meets, 'added_latency_p99_ms')})",
        f"  server CPU {_f(s['cpu_cores'], '.3f')} cores ({_mark(meets, 'cpu_cores')}), "
        f"{_f(s['cpu_us_per_copy'], '.2f')} us per copy; RSS {_f(s['rss_mb'], '.0f')} MB "
        f"({_mark(meets, 'rss_mb')}); fds {s['fds']}, tasks {s['asyncio_tasks']:.0f}",
        f"  generator {g['cpu_cores']:.3f} cores, RSS {g['rss_mb']:.0f} MB; late sends "
        f"{g['late_fraction']:.2%}, socket drops {g['socket_drops']}, loss "
        f"{_f(g['loss'], '.4%')}, jitter p99 {_f(g['jitter_ms'].get('p99'), '.2f')} ms, "
        f"e2e p99 {_f(g['e2e_latency_ms'].get('p99'), '.2f')} ms",
        f"  machine {r['machine']['busy_cores']:.2f} of {r['machine']['cpus']} cores busy, "
        f"{r['machine']['softirq_cores']:.2f} in soft interrupts (packet delivery), "
        f"{r['machine']['other_cores']:.2f} by other work",
    ]
    if g["join_errors"]:
        lines.append(f"  join errors: {g['join_errors']}")
    tr = r.get("transcription")
    if tr:
        sc = tr.get("sidecar") or {}
        lines.append(
            f"  transcription: tap drops {tr.get('voice_tap_queue_drops_total', 'n/a')}, "
            f"spool files {tr.get('voice_spool_files_total', 'n/a')}, live lost "
            f"{tr.get('voice_transcriber_live_lost_total', 'n/a')}, sidecar "
            f"{_f(sc.get('cpu_cores'), '.2f')} cores {_f(sc.get('rss_mb'), '.0f')} MB"
        )
    soak = r.get("soak")
    if soak:
        series = soak["series"]
        parts = []
        for key, unit in (("server_rss_mb", "MB"), ("server_fds", "fds"), ("asyncio_tasks", "")):
            slope = series.get(key, {}).get("slope_per_hour")
            if slope is not None:
                parts.append(f"{key} {slope:+.1f}{unit}/h")
        if parts:
            lines.append(f"  soak ({soak['samples']} samples): " + ", ".join(parts))
    after = r.get("after_leave")
    if after:
        lines.append(
            f"  after leave: sessions {after['sessions']:.0f}, transports "
            f"{after['transports']:.0f}, tasks {after['asyncio_tasks']:.0f}, fds "
            f"{after['open_fds']:.0f}"
        )
    lines.append(f"  valid: {'yes' if r['valid'] else 'NO: ' + '; '.join(r['valid_reasons'])}")
    return "\n".join(lines)


def format_medians(doc: dict[str, Any]) -> str:
    """The headline medians of ``--repeat`` (see :mod:`voice_server.loadtest.repeat`)."""
    lines = [f"medians of {doc['valid_runs']} valid run(s) of {doc['runs']}:"]
    for key, value in doc["median"].items():
        spread = doc["range"][key]
        rng = "" if spread is None else f"  ({spread[0]:g} .. {spread[1]:g})"
        lines.append(f"  {key:32} {_f(value, 'g')}{rng}")
    for reasons in doc["invalid_reasons"]:
        lines.append(f"  not valid: {'; '.join(reasons)}")
    return "\n".join(lines)
