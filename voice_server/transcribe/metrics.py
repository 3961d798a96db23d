"""Prometheus families of the tap and the spool writer (read at scrape time)."""

from __future__ import annotations

from voice_server.metrics import Family
from voice_server.transcribe.spool import SpoolWriter


def spool_families(spool: SpoolWriter) -> list[Family]:
    tap, c = spool.tap.counters, spool.counters
    gaps = Family("voice_calllog_gaps_total", "counter", "Gap records written by reason")
    for reason in ("spool_quota", "spool_error", "spool_backlog", "server_restart", "node_restart"):
        gaps.add(c.gaps.get(reason, 0), reason=reason)
    return [
        Family("voice_tap_bursts_total", "counter", "Talk bursts tapped for the log").add(
            tap.bursts
        ),
        Family("voice_tap_packets_total", "counter", "Packets handed to the spool").add(
            tap.packets
        ),
        Family("voice_tap_queue_drops_total", "counter", "Packets dropped: spool queue full").add(
            tap.queue_drops
        ),
        Family(
            "voice_tap_opening_drops_total",
            "counter",
            "Bursts whose spool file waited for the writer thread (opener queue full)",
        ).add(tap.opening_drops),
        Family("voice_tap_queue_length", "gauge", "Items waiting for the spool writer").add(
            len(spool.tap.queue)
        ),
        Family("voice_spool_files_total", "counter", "Bursts written, fsynced and closed").add(
            c.files
        ),
        Family("voice_spool_bytes_total", "counter", "Bytes written to the spool").add(c.bytes),
        Family("voice_spool_recovered_total", "counter", "Partial files completed at start").add(
            c.recovered
        ),
        Family("voice_spool_bad_packets_total", "counter", "Unparsable packets not spooled").add(
            c.bad_packets
        ),
        Family(
            "voice_spool_clip_upload_failures_total",
            "counter",
            "Failed tries to put an ended burst's clip into the shared store (retried)",
        ).add(c.clip_upload_failures),
        Family(
            "voice_spool_job_queue_errors_total",
            "counter",
            "Failed tries to queue an ended burst's transcription job (retried)",
        ).add(c.job_queue_errors),
        Family(
            "voice_spool_uploads_waiting",
            "gauge",
            "Ended bursts whose clip upload or job is not done yet (retried every second)",
        ).add(spool.uploads.waiting),
        Family(
            "voice_spool_upload_drops_total",
            "counter",
            "Ended bursts not taken by the full upload queue (uploaded at the next restart)",
        ).add(spool.uploads.drops),
        c.upload_delay.family(
            "voice_spool_clip_upload_seconds",
            "Burst file fsynced to its clip in the shared store (PostgreSQL), retries included",
        ),
        gaps,
        c.close_latency.family(
            "voice_spool_close_seconds", "Burst end to spool file fsynced and renamed"
        ),
    ]
