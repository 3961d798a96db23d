"""The supervised transcriber: low CPU priority, linked the way the server speaks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from voice_server.config import Config
from voice_server.tlscert import ensure_self_signed
from voice_server.transcribe.supervise import SIDECAR_PRIORITY, TranscriberSupervisor


def _argv(**settings: object) -> list[str]:
    supervisor = TranscriberSupervisor.from_config(Config(transcriber=True, **settings))  # type: ignore[arg-type]
    assert supervisor is not None
    return supervisor.argv


def _value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_the_supervised_sidecar_runs_at_low_cpu_priority() -> None:
    assert SIDECAR_PRIORITY == "low"
    assert _value(_argv(), "--cpu-priority") == "low"


def test_no_sidecar_is_supervised_unless_asked() -> None:
    assert TranscriberSupervisor.from_config(Config(transcriber=False)) is None


def test_over_plain_http_the_sidecar_links_over_http() -> None:
    argv = _argv(port=8123)
    assert _value(argv, "--server") == "http://127.0.0.1:8123"
    assert "--ca-file" not in argv


def test_under_https_the_sidecar_trusts_exactly_the_servers_certificate(tmp_path: Path) -> None:
    files = ensure_self_signed(tmp_path)
    argv = _argv(port=8443, tls_cert=files.cert, tls_key=files.key, host="0.0.0.0")
    assert _value(argv, "--server") == "https://127.0.0.1:8443"
    assert _value(argv, "--ca-file") == str(files.cert)
    assert "--tls-server-name" not in argv  # the self-signed certificate names 127.0.0.1


def test_an_organisations_certificate_is_checked_for_a_name_it_holds(tmp_path: Path) -> None:
    from tests.tlsca import issue_certificate

    cert, key = issue_certificate(tmp_path, ["voice.city.example"])
    argv = _argv(port=443, tls_cert=cert, tls_key=key)
    assert _value(argv, "--server") == "https://127.0.0.1:443"
    assert _value(argv, "--tls-server-name") == "voice.city.example"


def test_the_sidecar_lowers_itself_to_idle_scheduling() -> None:
    code = (
        "import os; from voice_server.transcribe.commands import lower_priority; "
        "print(lower_priority('idle'), os.sched_getscheduler(0) == os.SCHED_IDLE)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["idle", "True"]
    code = "import os; from voice_server.transcribe.commands import lower_priority; "
    code += "n = os.nice(0); print(lower_priority('low'), os.nice(0) - n)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "low" and int(out.stdout.split()[1]) in (10, 19 - os.nice(0))
