"""Sign-in, sessions, CSRF, cookies, headers, throttling, codes and the audit trail against a real
server process with accounts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.accounts import client, form_csrf, org_server, password, pre_csrf, signin
from tests.servers import ServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with org_server(tmp_path_factory.mktemp("signin")) as srv:
        yield srv


def audit_rows(server: ServerProcess, action: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(server.data_dir / "voice.db")
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(
            "SELECT * FROM audit_log WHERE action = ? ORDER BY seq", (action,)
        ).fetchall()
    finally:
        conn.close()


def test_login_sets_a_strict_httponly_cookie_and_logout_revokes_the_session(
    server: ServerProcess,
) -> None:
    with client(server) as c:
        token = pre_csrf(c)
        r = c.post(
            "/api/v1/auth/login",
            json={"name": "Boss", "password": password("boss")},
            headers={"X-CSRF-Token": token},
        )
        assert r.status_code == 200
        body = r.json()
        assert body["authenticated"] and body["user"]["name"] == "boss"
        assert [ch["name"] for ch in body["user"]["supervises"]] == ["ops"]
        cookie = r.headers["set-cookie"]
        assert "vs_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on 127.0.0.1 (docs/security.md)
        raw = c.cookies["vs_session"]
        csrf = body["csrf_token"]
        assert c.get("/api/v1/auth/session").json()["user"]["role"] == "supervisor"
        assert c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    with client(server) as again:  # the old cookie no longer works anywhere
        again.cookies.set("vs_session", raw)
        assert not again.get("/api/v1/auth/session").json()["authenticated"]
        assert again.get("/dashboard", follow_redirects=False).status_code == 303


def test_wrong_unknown_and_disabled_sign_ins_look_alike_and_are_audited(
    server: ServerProcess,
) -> None:
    before = len(audit_rows(server, "auth.login"))
    with client(server, "127.0.0.21") as c:
        csrf = pre_csrf(c)
        for name, pw in [
            ("boss", "wrong-password"),
            ("nobody", "whatever1"),
            ("gone", password("gone")),
        ]:
            r = c.post(
                "/api/v1/auth/login",
                json={"name": name, "password": pw},
                headers={"X-CSRF-Token": csrf},
            )
            assert r.status_code == 401 and r.json()["detail"]["code"] == "signin_failed"
    rows = audit_rows(server, "auth.login")[before:]
    assert [(r["target"], r["result"], r["address"]) for r in rows] == [
        ("user:boss", "failed", "127.0.0.21"),
        ("user:nobody", "failed", "127.0.0.21"),
        ("user:gone", "failed", "127.0.0.21"),
    ]
    assert all("wrong-password" not in r["details"] for r in rows)


def test_five_failures_lock_the_account_even_with_the_right_password(
    server: ServerProcess,
) -> None:
    with client(server, "127.0.0.22") as c:
        csrf = pre_csrf(c)
        codes = []
        for _ in range(6):
            r = c.post(
                "/api/v1/auth/login",
                json={"name": "ito", "password": "not-it-at-all"},
                headers={"X-CSRF-Token": csrf},
            )
            codes.append(r.status_code)
        assert codes == [401] * 5 + [429]
        r = c.post(
            "/api/v1/auth/login",
            json={"name": "ito", "password": password("ito")},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    with client(server, "127.0.0.23") as other:  # another address: still locked (per account)
        r = other.post(
            "/api/v1/auth/login",
            json={"name": "ito", "password": password("ito")},
            headers={"X-CSRF-Token": pre_csrf(other)},
        )
        assert r.status_code == 429
    results = [r["result"] for r in audit_rows(server, "auth.login") if r["target"] == "user:ito"]
    assert results[:5] == ["failed"] * 5 and results[5:] == ["locked"] * 3


def test_twenty_failures_from_one_address_lock_that_address(server: ServerProcess) -> None:
    with client(server, "127.0.0.24") as c:
        csrf = pre_csrf(c)
        statuses = []
        for i in range(21):
            r = c.post(
                "/api/v1/auth/login",
                json={"name": f"spray{i}", "password": "password1"},
                headers={"X-CSRF-Token": csrf},
            )
            statuses.append(r.status_code)
        assert statuses == [401] * 20 + [429]
        r = c.post(
            "/api/v1/auth/login",
            json={"name": "mori", "password": password("mori")},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 429
    with client(server, "127.0.0.25") as elsewhere:
        signin(elsewhere, "mori")


def test_state_changes_need_the_csrf_token(server: ServerProcess) -> None:
    with client(server) as c:
        r = c.post("/api/v1/auth/login", json={"name": "root", "password": password("root")})
        assert r.status_code == 403 and r.json()["detail"]["code"] == "csrf"
        csrf = signin(c, "root")
        body = {"name": "csrf-user", "role": "staff"}
        assert c.post("/api/v1/users", json=body).status_code == 403
        assert (
            c.post("/api/v1/users", json=body, headers={"X-CSRF-Token": "x" + csrf}).status_code
            == 403
        )
        assert c.post("/dashboard/channels", data={"name": "zz"}).status_code == 403
        assert c.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201
        page = c.get("/dashboard/channels")
        r = c.post("/dashboard/channels", data={"name": "csrf-chan", "csrf": form_csrf(page.text)})
        assert r.status_code == 303


def test_every_html_page_has_the_security_headers(server: ServerProcess) -> None:
    with client(server) as c:
        signin(c, "root")
        for path in [
            "/signin",
            "/dashboard",
            "/dashboard/users",
            "/dashboard/channels",
            "/dashboard/channels/ops",
            "/dashboard/audit",
            "/dashboard/codes",
        ]:
            r = c.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
            assert "<script>" not in r.text and " on" + "click=" not in r.text
        api = c.get("/api/v1/users")
        assert api.headers["x-content-type-options"] == "nosniff"


def test_the_signin_page_signs_in_with_a_form_and_redirects_safely(server: ServerProcess) -> None:
    with client(server) as c:
        page = c.get("/signin?next=//evil.example/")
        assert 'name="next" value=""' in page.text
        data = {
            "name": "root",
            "password": password("root"),
            "csrf": form_csrf(page.text),
            "next": "//evil.example/",
        }
        r = c.post("/signin", data=data)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard"
        assert c.get("/dashboard").status_code == 200
    with client(server) as c:
        page = c.get("/signin")
        data = {"name": "root", "password": "wrong-one", "csrf": form_csrf(page.text)}
        r = c.post("/signin", data=data)
        assert r.status_code == 401 and "signin" in r.text
        assert (
            c.post("/signin", data={"name": "root", "password": password("root")}).status_code
            == 403
        )


def test_language_follows_accept_language_and_the_switch(server: ServerProcess) -> None:
    with client(server) as c:
        assert "サインイン" in c.get("/signin").text
        assert ">Sign in<" in c.get("/signin", headers={"Accept-Language": "en-US,en"}).text
        r = c.get("/lang?to=en&next=/signin")
        assert r.status_code == 303 and r.headers["location"] == "/signin"
        assert ">Sign in<" in c.get("/signin").text
        assert c.get("/lang?to=en&next=https://evil.example/").headers["location"] == "/signin"


def test_a_supervisor_makes_a_one_time_code_for_staff_of_their_channel(
    server: ServerProcess,
) -> None:
    with client(server) as boss:
        csrf = signin(boss, "boss")
        r = boss.post("/api/v1/auth/codes", json={"user": "sato"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201
        code = r.json()["code"]
        assert r.json()["signin_url"].endswith("/signin#code=" + code.replace("-", ""))
        refused = boss.post(
            "/api/v1/auth/codes", json={"user": "mori"}, headers={"X-CSRF-Token": csrf}
        )
        assert refused.status_code == 403  # mori is in hq, which boss does not supervise
        page = boss.post("/dashboard/codes", data={"user": "sato", "csrf": csrf})
        assert page.status_code == 200 and "<svg" in page.text and 'id="code-text"' in page.text
    with client(server) as tablet:
        r = tablet.post(
            "/api/v1/auth/code",
            json={"code": code.lower()},
            headers={"X-CSRF-Token": pre_csrf(tablet)},
        )
        assert (
            r.status_code == 200
            and r.json()["user"]["name"] == "sato"
            and r.json()["via"] == "session"
        )
        csrf = r.json()["csrf_token"]
        jt = tablet.post(
            "/api/v1/auth/join-token", json={"channel": "ops"}, headers={"X-CSRF-Token": csrf}
        )
        assert jt.status_code == 200 and jt.json()["channel"] == "ops"
        assert tablet.get("/dashboard").status_code == 403  # staff: no dashboard
    with client(server) as thief:
        r = thief.post(
            "/api/v1/auth/code", json={"code": code}, headers={"X-CSRF-Token": pre_csrf(thief)}
        )
        assert r.status_code == 401
    actions = [(r["actor"], r["result"]) for r in audit_rows(server, "auth.code")]
    assert ("sato", "ok") in actions and ("anonymous", "failed") in actions
    denied = audit_rows(server, "signin_code.create")
    assert any(r["actor"] == "boss" and r["result"] == "denied" for r in denied)


def test_n_admin_changes_over_the_api_give_exactly_n_audit_rows(server: ServerProcess) -> None:
    def count() -> int:
        conn = sqlite3.connect(server.data_dir / "voice.db")
        try:
            return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])
        finally:
            conn.close()

    with client(server) as c:
        csrf = signin(c, "root")
        h = {"X-CSRF-Token": csrf}
        before = count()
        calls = [
            c.post(
                "/api/v1/users",
                json={"name": "n1", "role": "staff", "password": "longenough1"},
                headers=h,
            ),
            c.post("/api/v1/users", json={"name": "n2", "role": "supervisor"}, headers=h),
            c.post("/api/v1/channels", json={"name": "n-chan", "display_name": "N"}, headers=h),
            c.put("/api/v1/channels/n-chan/members/n1", headers=h),
            c.put("/api/v1/channels/n-chan/supervisors/n2", headers=h),
            c.patch(
                "/api/v1/channels/n-chan",
                json={"retention_days": 90, "legal_hold": True},
                headers=h,
            ),
            c.delete("/api/v1/channels/n-chan/members/n1", headers=h),
            c.post("/api/v1/users/n1/password", json={"password": "another-one1"}, headers=h),
            c.post("/api/v1/users/n1/disable", headers=h),
            c.post("/api/v1/users/n1/enable", headers=h),
        ]
        assert [r.status_code for r in calls] == [201, 201, 201, 200, 200, 200, 200, 204, 200, 200]
        assert calls[5].json()["retention_days"] == 90 and calls[5].json()["legal_hold"] is True
        assert count() - before == len(calls)
        export = c.get("/api/v1/audit/export?format=csv")
        assert export.content.startswith(b"\xef\xbb\xbf") and b"exported_by,root" in export.content
        assert b"another-one1" not in export.content and b"longenough1" not in export.content
        assert count() - before == len(calls) + 1  # the export itself is audited
        js = c.get("/api/v1/audit/export?format=json").json()
        assert js["exported_by"] == "root" and js["entries"][0]["seq"] == 1


def test_metrics_follow_the_configured_networks_not_roles(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 200  # loopback, no sign-in
    assert "voice_session_revocations_total" in httpx.get(f"{server.url}/metrics").text


def test_tampering_with_the_database_file_is_found_by_audit_verify(tmp_path: Path) -> None:
    from tests.accounts import build_org

    build_org(tmp_path)
    ok = ServerProcess(tmp_path, 0, 0).cli("audit", "verify")
    assert ok.startswith("audit log intact")
    conn = sqlite3.connect(tmp_path / "voice.db")
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET target = 'user:mallory' WHERE seq = 4")
    conn.commit()
    conn.close()
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "voice_server.cli", "audit", "verify", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "row 4" in out.stderr and "edited" in out.stderr


def test_the_demo_prints_working_sign_in_details(tmp_path: Path) -> None:
    import re

    from tests.servers import running_server

    with running_server(tmp_path, channels=(), extra_args=["--demo"]) as demo:
        log = demo.log()
        assert f"sign in: {demo.url}/signin" in log
        creds = dict(re.findall(r"name=(\w+) password=(\w+)", log))
        assert set(creds) == {"sato", "suzuki", "tanaka", "yamada"}
        with client(demo) as c:
            signin(c, "yamada", creds["yamada"])
            assert c.get("/dashboard/users").status_code == 200
        with client(demo) as c:
            signin(c, "tanaka", creds["tanaka"])
            assert c.get("/dashboard").status_code == 200
            assert c.get("/dashboard/users").status_code == 403


def test_validation_errors_do_not_echo_the_input(server: ServerProcess) -> None:
    with client(server) as c:
        secret = "p" * 300
        r = c.post(
            "/api/v1/auth/login",
            json={"name": "root", "password": secret},
            headers={"X-CSRF-Token": pre_csrf(c)},
        )
        assert r.status_code == 422 and secret not in r.text
