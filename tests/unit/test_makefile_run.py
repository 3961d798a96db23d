"""`make run`'s variants as make expands them (``make -n``: nothing runs): the default Korean
Vosk recognizer, ``ASR=ja`` (Whisper, Japanese, the [whisper] extra installed once), ``TLS=0``,
and a bad ``ASR`` refused with one line and a non-zero exit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    # -B: every target out of date, so the install steps show as well
    return subprocess.run(
        ["make", "-n", "-B", "-C", str(ROOT), "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def serve_line(out: str) -> str:
    text = out.replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if "voice-server serve" in ln]
    return line


def test_the_default_runs_vosk_over_https_with_the_runtime_only() -> None:
    run = dry_run()
    assert run.returncode == 0, run.stderr
    line = serve_line(run.stdout)
    assert "--demo --transcriber" in line and "--tls-cert" in line
    assert "--asr-engine" not in line
    assert "whisper" not in run.stdout  # the [whisper] extra is not installed


def test_asr_ja_installs_whisper_once_and_runs_it_in_japanese() -> None:
    run = dry_run("ASR=ja")
    assert run.returncode == 0, run.stderr
    assert "'.[model-ko,tts,whisper]'" in run.stdout
    assert serve_line(run.stdout).endswith("--asr-engine whisper --asr-language ja")


def test_tls_0_serves_plain_http() -> None:
    run = dry_run("TLS=0")
    assert run.returncode == 0, run.stderr
    assert "--tls-cert" not in serve_line(run.stdout)
    assert "tls-cert" not in run.stdout


def test_an_unknown_asr_is_one_line_and_a_non_zero_exit() -> None:
    run = dry_run("ASR=fr")
    assert run.returncode != 0
    (line,) = run.stderr.strip().splitlines()
    assert "ASR must be ko or ja, not 'fr'" in line
