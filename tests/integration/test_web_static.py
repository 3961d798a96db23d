"""The phone client's files as the server serves them (no browser): strict CSP, no inline
script, no-cache revalidation, the service worker at the root scope, other routes unaffected;
and HTTPS with the certificate `voice-server tls-cert` makes."""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.servers import ServerProcess, running_server
from voice_server.web.static import CSP

pytestmark = pytest.mark.integration
WEB = Path(__file__).resolve().parents[2] / "clients" / "web"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_handlers: list[str] = []
        self.styles = 0
        self._in_script = False
        self.inline_code = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inline_handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True
        if tag == "style" or any(name == "style" for name, _ in attrs):
            self.styles += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_code += data.strip()


def test_index_has_a_strict_csp_and_no_inline_script_or_style(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert r.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP
    assert "connect-src 'self' ws: wss:" in CSP and "media-src 'self' blob:" in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-cache" and r.headers.get("etag")
    page = _Scripts()
    page.feed(r.text)
    assert page.scripts and all(s.get("src") for s in page.scripts)
    assert page.inline_code == "" and page.inline_handlers == [] and page.styles == 0


def test_every_module_and_asset_is_served_with_its_type(server: ServerProcess) -> None:
    files = sorted(p.relative_to(WEB).as_posix() for p in WEB.rglob("*") if p.is_file())
    assert "sw.js" in files and "manifest.webmanifest" in files
    types = {".js": "javascript", ".css": "text/css", ".svg": "image/svg", ".html": "text/html"}
    for name in files:
        r = httpx.get(f"{server.url}/{name}")
        assert r.status_code == 200, name
        expected = types.get(Path(name).suffix, "manifest+json")
        assert expected in r.headers["content-type"], (name, r.headers["content-type"])
        assert r.headers["cache-control"] == "no-cache"


def test_the_service_worker_caches_exactly_the_shell_files() -> None:
    sw = (WEB / "sw.js").read_text()
    listed = set(re.findall(r'^\s+"([^"]+)",$', sw, re.M)) - {"./"}
    shipped = {p.relative_to(WEB).as_posix() for p in WEB.rglob("*") if p.is_file()} - {"sw.js"}
    assert listed == shipped  # a file added to the app must be added to the shell list too
    assert "fetch(req" in sw and "/^\\/(ws|api|metrics|healthz|readyz)" in sw


def test_no_user_text_is_rendered_as_html() -> None:
    for path in (WEB / "js").glob("*.js"):
        code = path.read_text()
        assert "innerHTML" not in code and "outerHTML" not in code, path.name
        assert "insertAdjacentHTML" not in code and "document.write" not in code, path.name
        assert "eval(" not in code and "new Function" not in code, path.name


def test_the_web_client_never_names_a_stun_server() -> None:
    call = (WEB / "js" / "call.js").read_text()
    # only the relays the server names in joined.ice_servers (none unless turn_urls is set)
    assert "this.iceServers = [];" in call and "iceServers," in call
    for path in (WEB / "js").glob("*.js"):
        assert "stun:" not in path.read_text() and "turn:" not in path.read_text()


def test_other_routes_are_untouched_by_the_static_mount(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    assert httpx.get(f"{server.url}/metrics").text.startswith("# HELP")
    assert httpx.get(f"{server.url}/no-such-file").status_code == 404


def test_https_with_the_self_signed_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = subprocess.run(
        [sys.executable, "-m", "voice_server.cli", "tls-cert", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    cert, key = data / "tls" / "cert.pem", data / "tls" / "key.pem"
    assert "created" in made.stdout and "fingerprint" in made.stdout
    assert key.stat().st_mode & 0o077 == 0
    san = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert "localhost" in san.value.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(a) for a in san.value.get_values_for_type(x509.IPAddress)]
    again = subprocess.run(
        [sys.executable, "-m", "voice_server.cli", "tls-cert", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "existing" in again.stdout  # kept, not replaced
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    with running_server(data, extra_args=args, tls=True) as srv:
        ctx = ssl.create_default_context(cafile=str(cert))
        r = httpx.get(f"https://127.0.0.1:{srv.port}/", verify=ctx)
        assert r.status_code == 200 and r.headers["content-security-policy"] == CSP
        assert "https://127.0.0.1" in srv.log()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{srv.port}/healthz", timeout=2)


def test_tls_cert_without_key_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "voice_server.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--tls-cert",
            str(tmp_path / "c.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "tls_cert and tls_key" in done.stderr
