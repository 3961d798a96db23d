"""Schemathesis against the REST API's OpenAPI schema on a real server process: no request it
generates (valid or not, as a supervisor's session, then as an admin API token — which may
disable or re-password anyone) gets a 5xx."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.accounts import Role, client, org_server, signin, token
from tests.servers import ServerProcess
from voice_server.identity.tokens import Audience

pytestmark = pytest.mark.integration
pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with org_server(tmp_path_factory.mktemp("schema")) as srv:
        yield srv


def schemathesis(server: ServerProcess, tmp: Path, *headers: str, examples: int) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]
    args = [
        "run",
        f"{server.url}/api/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(examples),
        "--workers",
        "1",  # concurrent workers trip a CPython 3.11 ast race inside hypothesis
        "--generation-database",
        "none",
        "--seed",
        "20251123",
        "--no-color",
        "--request-timeout",
        "10",
    ]
    for header in headers:
        args += ["-H", header]
    out = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=240, cwd=tmp)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert " passed" in out.stdout
    assert "Traceback" not in server.log()


def test_no_server_errors_as_a_signed_in_supervisor(server: ServerProcess, tmp_path: Path) -> None:
    with client(server, "127.0.0.31") as c:  # the fuzzing may lock 127.0.0.1
        csrf = signin(c, "boss")
        cookie = c.cookies["vs_session"]
    schemathesis(
        server, tmp_path, f"Cookie: vs_session={cookie}", f"X-CSRF-Token: {csrf}", examples=25
    )


def test_no_server_errors_as_an_admin_api_token(server: ServerProcess, tmp_path: Path) -> None:
    api = token(server, "root", "*", aud=Audience.API, role=Role.ADMIN)
    schemathesis(server, tmp_path, f"Authorization: Bearer {api}", examples=40)
