"""``voice-server bench forward``: the forwarding cost of the real server, and a relay baseline.

Forward part (this module): the real ``voice-server serve`` runs in its own child process
(:mod:`serverproc`); S speakers and L listeners are simulated participants
(:mod:`voice_server.sim`) in this process, one channel, every talker on its own slot. Once all
are connected, the speakers talk (audio level 20, 50 packets/s) and the listeners send a DTX
frame every 400 ms (``listener_dtx``), as a browser with ``usedtx=1`` would. After ``warmup`` s
a window of ``seconds`` is measured between two scrapes of ``/metrics``:

- ``cpu_us_per_packet`` = server CPU (utime + stime of the server pid from ``/proc``, every
  thread) ÷ forwarded copies (Δ ``voice_media_packets_out_total``); the generator's CPU is in
  another process and is reported apart (``generator.cpu_cores``);
- ``added_latency_ms``: Δ of the server's ``voice_media_forward_seconds`` histogram (time from
  the datagram being read off the socket to the ``sendto`` of each copy, so it does not include
  time queued in the kernel's socket buffer); also ``generator.e2e_latency_ms``, talker send to
  listener receive through the server (same clock, one process; includes both kernels and the
  generator's own scheduling);
- ``loss`` (inside the server) = 1 − copies ÷ (Δ ``voice_media_packets_routed_total`` × (N − 1)),
  floored at 0; the kernel's drops on the server's socket (``/proc/net/udp``) are reported
  apart (``server_socket_drops``), as are the generator's (``generator.loss``, from sequence
  gaps; ``generator.socket_drops``);
- ``valid``: the generator kept pace (≤ 1 % late sends), its sockets dropped nothing, no
  socket or SRTP errors, and other processes of this shared machine used at most 0.25 core
  during the window (``machine.other_cores``, from ``/proc/stat``, includes kernel work done
  for the benchmark outside the two processes, e.g. softirqs); ``valid_reasons`` says what
  failed.

Floor (``floor``, :mod:`floor`): one SRTP protect and one loopback ``sendto`` per copy, paced
like the server (one burst of N − 1 copies per talker packet), in this process after the
server stopped: what this machine charges for the unavoidable part; ``above_floor_us_per_packet``
is the rest (Python, event-loop wake-ups, talk detection, listener DTX packets).

Relay part: :func:`voice_server.bench.relay_baseline.run_relay_baseline` at a size stock aiortc
sustains; ``ratio`` = relay ÷ forward CPU µs per listener-packet.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from voice_server.bench import prom
from voice_server.bench.floor import measure_floor
from voice_server.bench.procstat import CpuMeter, read_machine_busy_seconds, sample
from voice_server.bench.serverproc import ServerChild
from voice_server.bench.stats import summarize
from voice_server.bench.udpstat import read_udp_sockets, total_drops
from voice_server.histogram import LatencyHistogram
from voice_server.sim.group import SimGroup

__all__ = ["TARGETS", "format_summary", "run_forward_bench"]

CHANNEL = "bench"
PACKETS_PER_SECOND = 50  # one 20 ms Opus frame per packet
HIST = "voice_media_forward_seconds"
MAX_LATE_FRACTION = 0.01
MAX_OTHER_CORES = 0.25  # CPU used by other processes of the machine during the window
CONNECT_SECONDS = 120.0
TARGETS = {"cpu_us_per_packet": 10.0, "p99_ms": 5.0, "loss": 0.0, "ratio": 50.0}


def _ms(h: LatencyHistogram) -> dict[str, float | int | None]:
    out = h.summary_ms((50, 95, 99))
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


async def _wait_connected(server: ServerChild, count: int, within: float) -> None:
    """Until the server counts ``count`` completed transports (DTLS done, answer applied)."""
    deadline = time.monotonic() + within
    while True:
        samples = prom.parse(await server.metrics())
        done = prom.value(samples, "voice_media_dtls_handshakes_total")
        if done >= count:
            return
        if time.monotonic() > deadline:
            failed = prom.value(samples, "voice_media_dtls_failures_total")
            open_ = prom.value(samples, "voice_media_transports")
            fd, kept = tempfile.mkstemp(prefix="bench-forward-server-", suffix=".log")
            with os.fdopen(fd, "w") as f:
                f.write(server.log())
            raise RuntimeError(
                f"the server connected {done:.0f} of {count} simulated participants "
                f"({open_:.0f} transports open, {failed:.0f} DTLS failures); "
                f"server log kept in {kept}"
            )
        await asyncio.sleep(0.1)


async def _measure(
    server: ServerChild, group: SimGroup, speakers: int, listeners: int, seconds: float
) -> dict[str, Any]:
    talkers = group.participants[:speakers]
    members = speakers + listeners
    gen_ports = group.local_ports()
    m0 = prom.parse(await server.metrics())
    udp0 = read_udp_sockets()
    t0 = group.totals()
    talker_sent0 = sum(p.sent for p in talkers)
    late_ticks0 = group.pacer.late_ticks
    group.latency.reset()
    group.pacer.lateness.reset()
    server_cpu = CpuMeter(server.pid)
    own_cpu = CpuMeter()
    busy0 = read_machine_busy_seconds()
    server_cpu.start()
    own_cpu.start()
    await asyncio.sleep(seconds)
    cpu = server_cpu.stop()
    gen_cpu = own_cpu.stop()
    machine_cores = (read_machine_busy_seconds() - busy0) / cpu.wall_seconds
    other_cores = max(0.0, machine_cores - cpu.cores - gen_cpu.cores)
    m1 = prom.parse(await server.metrics())
    udp1 = read_udp_sockets()
    t1 = group.totals()
    talker_sent = sum(p.sent for p in talkers) - talker_sent0
    server_proc = sample(server.pid)

    def delta(name: str, **labels: str) -> int:
        return round(prom.value(m1, name, **labels) - prom.value(m0, name, **labels))

    copies = delta("voice_media_packets_out_total")
    routed = delta("voice_media_packets_routed_total")
    expected = routed * (members - 1)
    drops = {
        reason: delta("voice_media_drops_total", reason=reason)
        for reason in ("send_error", "not_ready", "bad_srtp", "stale", "slot_busy", "bad_rtp")
    }
    server_socket_drops = total_drops(udp1, [server.media_port]) - total_drops(
        udp0, [server.media_port]
    )
    gen_socket_drops = total_drops(udp1, gen_ports) - total_drops(udp0, gen_ports)
    g = t1 - t0
    if copies <= 0:
        raise RuntimeError("the server forwarded nothing in the measurement window")
    missing = max(0, expected - copies)
    loss = missing / expected if expected else 1.0
    socket_loss = (missing + server_socket_drops * (members - 1)) / max(
        1, expected + server_socket_drops * (members - 1)
    )
    latency = prom.histogram_delta(m0, m1, HIST)
    late_fraction = g.late_sends / g.sent if g.sent else 0.0
    reasons = []
    if late_fraction > MAX_LATE_FRACTION:
        reasons.append(f"generator sent {late_fraction:.1%} of packets late (> 10 ms)")
    if gen_socket_drops:
        reasons.append(f"generator sockets dropped {gen_socket_drops} datagrams")
    if other_cores > MAX_OTHER_CORES:
        reasons.append(f"other processes used {other_cores:.2f} cores of the machine")
    if g.socket_errors or g.srtp_errors:
        reasons.append(f"generator socket errors {g.socket_errors}, SRTP errors {g.srtp_errors}")
    jitter = summarize(group.jitter_ms(), ps=(50, 99))
    return {
        "speakers": speakers,
        "listeners": listeners,
        "seconds": seconds,
        "window_seconds": round(cpu.wall_seconds, 3),
        "cpu_us_per_packet": round(cpu.cpu_seconds * 1e6 / copies, 3),
        "added_latency_ms": _ms(latency),
        "loss": round(loss, 6),
        "loss_including_socket_drops": round(socket_loss, 6),
        "cpu_cores": round(cpu.cores, 4),
        "cpu_seconds": round(cpu.cpu_seconds, 3),
        "cpu_user_seconds": round(cpu.user_seconds, 3),
        "cpu_system_seconds": round(cpu.system_seconds, 3),
        "packets": copies,
        "packets_per_second": round(copies / cpu.wall_seconds, 1),
        "packets_in": delta("voice_media_packets_in_total"),
        "packets_routed": routed,
        "expected_copies": expected,
        "talker_packets_sent": talker_sent,
        "drops": drops,
        "server_socket_drops": server_socket_drops,
        "server_rss_mb": round(server_proc.rss_bytes / 1e6, 1),
        "server_threads": server_proc.threads,
        "generator": {
            "cpu_cores": round(gen_cpu.cores, 4),
            "sent": g.sent,
            "received": g.received,
            "loss": round(g.lost / g.expected, 6) if g.expected > 0 else None,
            "received_vs_forwarded": round(g.received / copies, 6),
            "late_sends": g.late_sends,
            "late_fraction": round(late_fraction, 6),
            "late_ticks": group.pacer.late_ticks - late_ticks0,
            "tick_lag_ms": _ms(group.pacer.lateness),
            "socket_drops": gen_socket_drops,
            "socket_errors": g.socket_errors,
            "srtp_errors": g.srtp_errors,
            "e2e_latency_ms": _ms(group.latency),
            "jitter_ms": {k: v for k, v in jitter.items() if k in ("p50", "p99", "max")},
        },
        "machine": {
            "cpus": os.cpu_count(),
            "busy_cores": round(machine_cores, 3),
            "other_cores": round(other_cores, 3),
            "loadavg_1min": os.getloadavg()[0],
        },
        "valid": not reasons,
        "valid_reasons": reasons,
    }


async def _run_forward(
    speakers: int, listeners: int, seconds: float, warmup: float, listener_dtx: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        server = ServerChild(Path(tmp), CHANNEL)
        await server.start()
        group: SimGroup | None = None
        try:
            group = SimGroup(
                server.ws_url, CHANNEL, lambda i: server.token(f"sim-{i}"), dtx=listener_dtx
            )
            started = time.monotonic()
            talkers = await group.add(speakers, within=CONNECT_SECONDS)
            listening = await group.add(listeners, within=CONNECT_SECONDS)
            await _wait_connected(server, speakers + listeners, CONNECT_SECONDS)
            connect_seconds = time.monotonic() - started
            talk_ns = time.perf_counter_ns()
            for p in talkers:
                p.talking = True
            await asyncio.sleep(warmup)
            result = await _measure(server, group, speakers, listeners, seconds)
            firsts = [p.first_audio_ns - talk_ns for p in listening if p.first_audio_ns > 0]
            result["connect_seconds"] = round(connect_seconds, 2)
            result["warmup_seconds"] = warmup
            result["listener_dtx"] = listener_dtx
            first = summarize(firsts, scale=1e-6, ps=(50, 99))
            result["generator"]["first_audio_ms"] = {
                k: first[k] for k in ("count", "p50", "p99", "max")
            }
            for p in talkers:
                p.talking = False
            await asyncio.sleep(0.2)
        finally:
            if group is not None:
                await group.close()
            code = await server.stop()
        result["server_exit_code"] = code
        return result


def run_forward_bench(
    speakers: int = 2,
    listeners: int = 200,
    seconds: float = 20.0,
    warmup: float = 3.0,
    *,
    relay: bool = True,
    relay_speakers: int = 2,
    relay_listeners: int = 6,
    relay_fast_audio_level: bool = False,
    listener_dtx: bool = True,
) -> dict[str, Any]:
    """Run the forward benchmark (and the relay baseline unless ``relay=False``).

    Must be called with no event loop running. Returns ``{"forward": {...}, "relay": {...} |
    None, "ratio": float | None, "targets": {...}, "meets_targets": {...}}``.
    """
    if speakers < 1 or listeners < 1 or seconds <= 0 or warmup < 0:
        raise ValueError("need speakers >= 1, listeners >= 1, seconds > 0, warmup >= 0")
    forward = asyncio.run(_run_forward(speakers, listeners, seconds, warmup, listener_dtx))
    rate = speakers * PACKETS_PER_SECOND
    floor = measure_floor(speakers + listeners - 1, max(50, int(rate * 2)), rate)
    forward["floor"] = floor
    forward["above_floor_us_per_packet"] = round(
        forward["cpu_us_per_packet"] - floor["cpu_us_per_packet"], 3
    )
    relay_result: dict[str, Any] | None = None
    ratio: float | None = None
    if relay:
        from voice_server.bench.relay_baseline import run_relay_baseline

        relay_result = run_relay_baseline(
            relay_speakers,
            relay_listeners,
            seconds,
            warmup,
            fast_audio_level=relay_fast_audio_level,
        )
        relay_result["kind"] = "aiortc MediaRelay" + (
            " + C audio level" if relay_fast_audio_level else " (stock)"
        )
        ratio = round(relay_result["cpu_us_per_packet"] / forward["cpu_us_per_packet"], 1)
    meets = {
        "cpu_us_per_packet": forward["cpu_us_per_packet"] <= TARGETS["cpu_us_per_packet"],
        "p99_ms": (forward["added_latency_ms"]["p99"] or 0.0) <= TARGETS["p99_ms"],
        "loss": forward["loss"] <= TARGETS["loss"],
        "ratio": None if ratio is None else ratio >= TARGETS["ratio"],
    }
    return {
        "forward": forward,
        "relay": relay_result,
        "ratio": ratio,
        "targets": TARGETS,
        "meets_targets": meets,
    }


def format_summary(result: dict[str, Any]) -> str:
    """A human summary of :func:`run_forward_bench`'s result (what the CLI prints)."""
    f = result["forward"]
    g = f["generator"]
    lat = f["added_latency_ms"]
    e2e = g["e2e_latency_ms"]
    t = result["targets"]
    meets = result["meets_targets"]

    def mark(key: str) -> str:
        ok = meets.get(key)
        return "n/a" if ok is None else ("ok" if ok else "MISSED")

    lines = [
        f"forward: {f['speakers']} speakers x {f['listeners']} listeners, "
        f"{f['window_seconds']:.1f} s window after {f['warmup_seconds']} s warm-up "
        f"(listener DTX {'on' if f['listener_dtx'] else 'off'})",
        f"  CPU per forwarded packet  {f['cpu_us_per_packet']:.2f} us  "
        f"(target <= {t['cpu_us_per_packet']:g}: {mark('cpu_us_per_packet')}); "
        f"server {f['cpu_cores']:.3f} cores, {f['packets_per_second']:.0f} copies/s, "
        f"RSS {f['server_rss_mb']:.0f} MB",
        f"  added latency (server)    p50 {lat['p50']:.3f}  p95 {lat['p95']:.3f}  "
        f"p99 {lat['p99']:.3f} ms  (target p99 <= {t['p99_ms']:g}: {mark('p99_ms')})",
        f"  loss inside the server    {f['loss']:.4%}  (target 0: {mark('loss')}); "
        f"kernel drops on its socket {f['server_socket_drops']}, send errors "
        f"{f['drops']['send_error']}",
        f"  floor (protect + sendto)  {f['floor']['cpu_us_per_packet']:.2f} us per copy "
        f"paced like the server; the server is {f['above_floor_us_per_packet']:.2f} us above it",
        f"  generator                 {g['cpu_cores']:.3f} cores, late sends "
        f"{g['late_fraction']:.2%}, socket drops {g['socket_drops']}, loss "
        f"{(g['loss'] or 0.0):.4%}, end-to-end p50 {e2e['p50']:.2f} p99 {e2e['p99']:.2f} ms",
        f"  machine                   {f['machine']['busy_cores']:.2f} of "
        f"{f['machine']['cpus']} cores busy, {f['machine']['other_cores']:.2f} by other work",
        f"  valid: {'yes' if f['valid'] else 'NO: ' + '; '.join(f['valid_reasons'])}",
    ]
    relay = result.get("relay")
    if relay is not None:
        lines += [
            f"relay ({relay['kind']}): {relay['speakers']} x {relay['listeners']}, "
            f"{relay['cpu_us_per_packet']:.1f} us per listener-packet, "
            f"{relay['cpu_cores']:.3f} cores, loss {relay['loss']:.2%}, "
            f"sustained {'yes' if relay['sustained'] else 'NO'}",
            f"ratio relay / forward: {result['ratio']:.1f}x "
            f"(target >= {t['ratio']:g}: {mark('ratio')})",
        ]
    return "\n".join(lines)
