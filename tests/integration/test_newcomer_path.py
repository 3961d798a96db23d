"""`make run`'s server as a new user gets it: runtime dependencies only, HTTPS with the
self-signed certificate, the demo organisation, the transcriber it supervises linked over HTTPS,
and every page telling a supervisor when transcription is not working."""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.runtime_only import hook_dir
from tests.servers import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(tmp: Path, *, runtime_only: bool = True) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = [str(ROOT), str(ROOT / "clients" / "headset")]
    if runtime_only:
        env.update(hook_dir(tmp / "hook"))
        paths.insert(0, str(tmp / "hook"))
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class MakeRun:
    """``voice-server tls-cert`` then ``serve --demo --transcriber`` with TLS, as ``make run``."""

    data: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        ctx = ssl.create_default_context(cafile=str(self.data / "tls" / "cert.pem"))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def password(self, name: str) -> str:
        match = re.search(rf"name={name} password=(\S+)", self.output())
        assert match, self.output()
        return match.group(1)

    def readyz(self) -> dict[str, object]:
        with self.client() as c:
            body: dict[str, object] = c.get("/readyz").json()
            return body

    def transcription(self) -> object:
        checks = self.readyz()["checks"]
        assert isinstance(checks, dict)
        return checks.get("transcription")


@pytest.fixture
def make_run_settings(tmp_path: Path) -> Iterator[Callable[..., MakeRun]]:
    started: list[MakeRun] = []

    def start(*extra: str, transcriber: bool = True, runtime_only: bool = True) -> MakeRun:
        data = tmp_path / f"data{len(started)}"
        env = _env(tmp_path, runtime_only=runtime_only)
        cli = [sys.executable, "-m", "voice_server.cli"]
        subprocess.run([*cli, "tls-cert", "--data-dir", str(data)], env=env, check=True)
        port = free_port()
        log = tmp_path / f"server{len(started)}.log"
        cmd = [
            *cli,
            "serve",
            "--demo",
            *(["--transcriber"] if transcriber else []),
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--media-port",
            str(free_port(socket.SOCK_DGRAM)),
            "--tls-cert",
            str(data / "tls" / "cert.pem"),
            "--tls-key",
            str(data / "tls" / "key.pem"),
            *extra,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        run = MakeRun(data, port, proc, log)
        started.append(run)

        def ready() -> bool:
            assert proc.poll() is None, f"the server exited:\n{run.output()}"
            return run.readyz().get("ready") is True

        wait_for(ready, 90, f"the server's /readyz\n{run.output()}")
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(20)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.wait()


def _metric(run: MakeRun, name: str) -> float:
    with run.client() as c:
        for line in c.get("/metrics").text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


def _sign_in(run: MakeRun, c: httpx.Client, name: str) -> None:
    csrf = c.get("/api/v1/auth/session").json()["csrf_token"]
    r = c.post(
        "/api/v1/auth/login",
        json={"name": name, "password": run.password(name)},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(t) for t in text]
    return found


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_every_cli_parser_builds_with_runtime_dependencies_only(tmp_path: Path) -> None:
    code = """
import argparse
from voice_server.cli import build_parser
from voice_client.cli import build_parser as client_parser

def walk(parser):
    parser.format_help()
    n = 1
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                n += walk(sub)
    return n

print(walk(build_parser()) + walk(client_parser()))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) > 10  # every subcommand's parser was built


def test_make_runs_server_links_its_transcriber_over_https_with_runtime_dependencies_only(
    make_run_settings: Callable[..., MakeRun],
) -> None:
    run = make_run_settings()
    wait_for(lambda: run.transcription() == "up", 120, f"transcription up\n{run.output()}")
    assert _metric(run, "voice_transcription_link_up") == 1
    assert "ModuleNotFoundError" not in run.output()
    assert "transcriber linked" in run.output()
    sidecars = _children(run.proc.pid)
    assert sidecars, "the server supervises no transcriber"
    assert _nice(sidecars[0]) - _nice(run.proc.pid) in (10, 19 - _nice(run.proc.pid))
    with run.client() as c:  # a supervisor sees no warning while it is up
        _sign_in(run, c, "tanaka")
        page = c.get("/dashboard")
        assert page.status_code == 200
        assert 'id="transcription-banner"' in page.text and 'data-state="up"' in page.text
        assert c.get("/dashboard/transcription").json()["state"] == "up"


def test_without_a_transcriber_every_dashboard_page_says_transcription_is_degraded(
    make_run_settings: Callable[..., MakeRun],
) -> None:
    run = make_run_settings(transcriber=False, runtime_only=False)
    assert run.transcription() == "degraded"
    assert run.readyz()["ready"] is True  # calls still work
    with run.client() as c:
        _sign_in(run, c, "tanaka")
        for path in ("/dashboard", "/dashboard/search", "/dashboard/live"):
            page = c.get(path, headers={"Accept-Language": "en"})
            assert page.status_code == 200, path
            assert 'data-state="degraded"' in page.text, path
            assert "Transcription is degraded" in page.text, path
        assert c.get("/dashboard/transcription").json()["state"] == "degraded"
    with httpx.Client(base_url=run.url, verify=False) as anonymous:
        assert anonymous.get("/dashboard/transcription").status_code in (401, 303, 302)


def test_a_transcriber_that_cannot_load_its_model_is_reported_stopped(
    make_run_settings: Callable[..., MakeRun], tmp_path: Path
) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    run = make_run_settings("--model", str(broken), runtime_only=False)
    wait_for(lambda: run.transcription() == "stopped", 120, f"stopped\n{run.output()}")
    wait_for(
        lambda: _metric(run, 'voice_transcription_link_errors_total{reason="sidecar_exited"}') >= 1,
        60,
        "a counted sidecar exit",
    )
    wait_for(lambda: "transcription stopped" in run.output(), 30, "the reason in the log")
    with run.client() as c:
        _sign_in(run, c, "tanaka")
        page = c.get("/dashboard", headers={"Accept-Language": "en"})
        assert "Transcription has stopped" in page.text
