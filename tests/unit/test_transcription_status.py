"""What the server says about transcription: up, degraded, stopped (and off)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from voice_server.metrics import MetricsRegistry
from voice_server.transcribe.monitor import TranscriptionMonitor
from voice_server.transcribe.status import (
    STALL_SECONDS,
    Observed,
    TranscriptionState,
    judge,
)

UP, DEGRADED, STOPPED, OFF = (
    TranscriptionState.UP,
    TranscriptionState.DEGRADED,
    TranscriptionState.STOPPED,
    TranscriptionState.OFF,
)


def _seen(**kw: object) -> Observed:
    base: dict[str, object] = {
        "call_log": True,
        "link_up": False,
        "sidecar_running": None,
        "oldest_pending_s": None,
        "since_progress_s": None,
    }
    base.update(kw)
    return Observed(**base)  # type: ignore[arg-type]


def test_a_linked_transcriber_is_up() -> None:
    assert judge(_seen(link_up=True, sidecar_running=True)).state is UP


def test_no_call_log_is_off_whatever_else() -> None:
    assert judge(_seen(call_log=False, link_up=True)).state is OFF


def test_link_down_with_an_empty_spool_is_degraded() -> None:
    verdict = judge(_seen(sidecar_running=True))
    assert verdict.state is DEGRADED and "spool" in verdict.reason


def test_a_sidecar_that_is_not_running_is_stopped() -> None:
    assert judge(_seen(sidecar_running=False)).state is STOPPED


def test_a_spool_that_holds_bursts_nobody_takes_for_a_minute_is_stopped() -> None:
    old = STALL_SECONDS + 1
    assert judge(_seen(oldest_pending_s=old, since_progress_s=old)).state is STOPPED
    assert judge(_seen(oldest_pending_s=old, since_progress_s=None)).state is STOPPED


@pytest.mark.parametrize(
    ("oldest", "progress"),
    [(5.0, 500.0), (STALL_SECONDS + 30, 3.0), (None, 500.0)],
)
def test_a_catch_up_that_still_takes_bursts_is_only_degraded(
    oldest: float | None, progress: float
) -> None:
    state = judge(_seen(oldest_pending_s=oldest, since_progress_s=progress)).state
    assert state is DEGRADED


@dataclass
class _Link:
    connected: bool = False
    auth_failures: int = 0
    disconnects: int = 0


@dataclass
class _Supervisor:
    running: bool = True
    restarts: int = 0


def _spool_file(data: Path, name: str, age: float) -> Path:
    spool = data / "spool"
    spool.mkdir(exist_ok=True)
    path = spool / f"{name}.ogg"
    path.write_bytes(b"OggS")
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_the_monitor_sees_the_spool_stall_and_the_catch_up_resume(tmp_path: Path) -> None:
    link = _Link()
    monitor = TranscriptionMonitor(tmp_path, link, link, supervisor=_Supervisor())
    assert monitor.check().state is DEGRADED
    stuck = _spool_file(tmp_path, "b1", STALL_SECONDS + 5)
    monitor._note_scan(monitor._scan())
    monitor._started -= STALL_SECONDS + 5  # this server has run a while, nothing taken out
    assert monitor.check().state is STOPPED
    stuck.unlink()  # the catch-up committed it
    _spool_file(tmp_path, "b2", STALL_SECONDS + 5)
    monitor._note_scan(monitor._scan())
    assert monitor.check().state is DEGRADED
    link.connected = True
    assert monitor.check().state is UP


def test_the_monitor_reports_a_dead_sidecar_and_counts_link_errors(tmp_path: Path) -> None:
    link = _Link(auth_failures=2, disconnects=1)
    supervisor = _Supervisor(running=False, restarts=3)
    monitor = TranscriptionMonitor(tmp_path, link, link, supervisor=supervisor)
    assert monitor.check().state is STOPPED
    registry = MetricsRegistry()
    registry.register(monitor.families)
    text = registry.render()
    assert "voice_transcription_link_up 0" in text
    assert 'voice_transcription_link_errors_total{reason="auth_failed"} 2' in text
    assert 'voice_transcription_link_errors_total{reason="sidecar_exited"} 3' in text
    assert 'voice_transcription_state{state="stopped"} 1' in text


def test_each_state_change_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="voice_server.transcribe.monitor")
    link = _Link()
    supervisor = _Supervisor(running=False)
    monitor = TranscriptionMonitor(tmp_path, link, link, supervisor=supervisor)
    for _ in range(5):
        monitor.check()
    supervisor.running = True
    link.connected = True
    for _ in range(5):
        monitor.check()
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("monitor")]
    assert len(messages) == 2
    assert messages[0].startswith("transcription stopped") and "up" in messages[1]
