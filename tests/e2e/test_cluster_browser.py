"""Two phones on a cluster, in Debian's Chromium (issue #20): real Redis and PostgreSQL, two real
`serve --node-id … --redis-url … --database-url postgresql://…` nodes, and Debian's haproxy
running `deploy/haproxy.cfg` (loopback addresses) in front of them; every node's public_url is
the proxy's address, the one address the phones know. Staff accounts are made with the CLI on
one node (they live in the shared database), a supervisor makes each one a sign-in code through
the proxy, and each phone signs in with its code and taps channel ops. The proxy puts the phones
on different nodes (a phone that lands beside the other is closed and another one opened), each
hears the other's tone across the nodes (the media relay between them). Then the node of phone A
is SIGKILLed: A notices (its socket drops), joins again through the proxy, which sends it to the
surviving node, and both phones hear each other again; B's connection never drops. Everything
runs inside a private network namespace (tests/e2e/conftest.py); every wait is on a condition
with a generous deadline, and the times printed are informational."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.audio import write_bursts
from tests.cluster_nodes import metric, ready, running_nodes
from tests.cluster_proxy import Proxy, needs_haproxy, running_proxy
from tests.e2e.test_staff_signin import phone
from tests.e2e.test_web_client import connected, hears, state, talking, wait_for
from tests.servers import ServerProcess
from voice_server.bench.ports import free_port
from voice_server.bench.redisserver import RedisServer

pytestmark = pytest.mark.e2e

FREQ_A, FREQ_B = 440.0, 880.0
DEADLINE_S = 60.0  # a busy machine: two nodes, Redis, PostgreSQL, haproxy and two browsers
BOSS_PASSWORD = "pw-boss-cluster-1234"


def add_users(node: ServerProcess) -> None:
    """Staff sato and kato (codes only) and their supervisor boss, with the CLI of one node:
    the accounts live in the cluster's one PostgreSQL database."""
    for name in ("sato", "kato"):
        node.cli(
            "users", "add", name, "--role", "staff", "--display-name", name.title(),
            "--channel", "ops", "--no-password",
        )  # fmt: skip
    cmd = [
        sys.executable, "-m", "voice_server.cli", "users", "add", "boss", "--role", "supervisor",
        "--password-stdin", "--data-dir", str(node.data_dir),
    ]  # fmt: skip
    env = {**os.environ, **node.env}
    subprocess.run(cmd, input=BOSS_PASSWORD + "\n", text=True, check=True, env=env)
    node.cli("channels", "assign", "ops", "--supervisor", "boss")


def sign_in_code(proxy: Proxy, user: str) -> str:
    """A one-time sign-in code for ``user``, made by the supervisor through the proxy (the
    dashboard's API); the QR code's address it comes with is the proxy's."""
    with httpx.Client(base_url=proxy.url, timeout=10) as c:
        csrf = c.get("/api/v1/auth/session").json()["csrf_token"]
        r = c.post(
            "/api/v1/auth/login",
            json={"name": "boss", "password": BOSS_PASSWORD},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/api/v1/auth/codes",
            json={"user": user},
            headers={"X-CSRF-Token": r.json()["csrf_token"]},
        )
        assert r.status_code == 201, r.text
        url = str(r.json()["signin_url"])
        assert url.startswith(f"{proxy.url}/signin#code="), url
        return url.rsplit("=", 1)[1]


def join_phone(pw: Any, proxy: Proxy, user: str, tone: Path) -> Any:
    """A phone signed in with its code (the link the QR page hands on to the app, with the
    diagnostics on) that taps channel ops; returned once its call has media."""
    page = phone(pw, tone)
    page.goto(f"{proxy.url}/#code={sign_in_code(proxy, user)}&diag=1")
    page.wait_for_selector("#channels:not([hidden])", timeout=DEADLINE_S * 1000)
    assert page.text_content("#greeting") == f"{user.title()} さんとしてサインイン中"
    page.click("button.channel[data-channel='ops']")
    wait_for(lambda: connected(page), f"{user} in the call with media", DEADLINE_S)
    return page


def sessions(nodes: dict[str, ServerProcess]) -> dict[str, int]:
    return {node_id: int(metric(node, "voice_sessions")) for node_id, node in nodes.items()}


def placed(nodes: dict[str, ServerProcess], total: int) -> dict[str, int]:
    """The sessions of each node, once they add up to ``total``."""

    def counted() -> dict[str, int] | None:
        now = sessions(nodes)
        return now if sum(now.values()) == total else None

    return wait_for(counted, f"{total} sessions in the cluster", DEADLINE_S)


def people(page: Any) -> list[str]:
    """The people list of a phone, by user: itself first."""
    subs: list[str] = page.eval_on_selector_all("#people li", "els => els.map(e => e.dataset.sub)")
    return subs


def heard_since(page: Any, freq: float, since_ms: float) -> bool:
    """A received slot had an onset after ``since_ms`` (wall clock), and ``freq`` is heard."""
    onsets: list[float] = page.evaluate("Object.values(window.voiceDiag.rxOnsets).flat()")
    return any(t > since_ms for t in onsets) and hears(page, freq)


def events(page: Any, kind: str, since_ms: float) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.voiceDiag.events")
    return [e for e in found if e["kind"] == kind and e["wall"] >= since_ms]


def test_two_phones_on_different_nodes_hear_each_other_and_one_survives_its_node_killed(
    pw: Any, namespace: None, redis_server: RedisServer, pg_url: str, tmp_path: Path
) -> None:
    needs_haproxy()
    ids = ["n1", "n2"]
    port = free_port()
    env = {"VOICE_PUBLIC_URL": f"http://127.0.0.1:{port}", "VOICE_GRACE_SECONDS": "2"}
    a_tone = write_bursts(tmp_path / "a.wav", FREQ_A, on_seconds=1.2, off_seconds=1.6)
    b_tone = write_bursts(tmp_path / "b.wav", FREQ_B, on_seconds=2.0, off_seconds=0.3)
    pages: list[Any] = []
    with (
        running_nodes(tmp_path, pg_url, redis_server.url, *ids, env=env) as started,
        running_proxy(tmp_path, started, ids, port) as proxy,
    ):
        nodes = dict(zip(ids, started, strict=True))
        for node in started:
            wait_for(lambda n=node: ready(n)[1]["checks"]["redis"] == "up", "redis up", DEADLINE_S)
        add_users(started[0])
        try:
            a = join_phone(pw, proxy, "sato", a_tone)
            pages.append(a)
            a_node = next(n for n, count in placed(nodes, 1).items() if count == 1)
            b = join_phone(pw, proxy, "kato", b_tone)
            pages.append(b)
            # B must land on the other node. The proxy takes turns per request (HTTP mode), so
            # where a socket lands depends on how many requests went before it, the same number
            # for every page load: a B beside A opens the app again (already signed in: its
            # channel list) and taps ops again, after one more request through the proxy per
            # try (somebody else's: a look at /readyz) so that the count changes.
            for attempt in range(1, 9):
                if placed(nodes, 2)[a_node] == 1:
                    break
                print(f"phone B landed beside A on {a_node} (try {attempt}): opening it again")
                b.goto("about:blank")
                placed(nodes, 1)  # its session gone (after the grace period)
                for _ in range(attempt):
                    assert httpx.get(f"{proxy.url}/readyz", timeout=10).status_code == 200
                b.goto(f"{proxy.url}/#channel=ops&diag=1")
                b.click("button.channel[data-channel='ops']", timeout=DEADLINE_S * 1000)
                wait_for(lambda: connected(b), "kato in the call again", DEADLINE_S)
            else:
                raise AssertionError("phone B never landed on the other node in 8 tries")
            b_node = next(n for n in ids if n != a_node)
            print(f"phone A on {a_node}, phone B on {b_node} (try {attempt})")

            wait_for(lambda: hears(b, FREQ_A), "B hearing A across the nodes", DEADLINE_S)
            wait_for(lambda: hears(a, FREQ_B), "A hearing B across the nodes", DEADLINE_S)
            # each sees the other in the channel's people list, and talking
            wait_for(lambda: people(a) == ["sato", "kato"], "A listing kato", DEADLINE_S)
            wait_for(lambda: people(b) == ["kato", "sato"], "B listing sato", DEADLINE_S)
            wait_for(lambda: talking(b, "sato") == "true", "B seeing sato talk", DEADLINE_S)
            wait_for(lambda: talking(a, "kato") == "true", "A seeing kato talk", DEADLINE_S)
            for name, page in (("a", a), ("b", b)):
                page.screenshot(path=str(tmp_path / f"{name}-before.png"), full_page=True)

            owner = redis.Redis.from_url(redis_server.url, decode_responses=True).hget(
                "{voice}:owner:ops", "node"
            )
            print(f"channel ops owned by {owner}; killing {a_node}")
            killed_ms = time.time() * 1000
            killed = time.monotonic()
            nodes[a_node].stop(signal.SIGKILL)
            lost = wait_for(lambda: events(a, "lost", killed_ms), "A noticing", DEADLINE_S)[0]
            why, after = lost["why"], lost["wall"] - killed_ms
            print(f"SIGKILL -> A lost its socket ({why}): {after:.0f} ms")
            back = wait_for(lambda: events(a, "reconnected", killed_ms), "A back", DEADLINE_S)[0]
            print(f"SIGKILL -> A joined again: {back['wall'] - killed_ms:.0f} ms")
            survivor = {b_node: nodes[b_node]}
            wait_for(lambda: sessions(survivor) == {b_node: 2}, "both on the survivor", DEADLINE_S)
            # heard again: a sound arriving after A joined again (an analyser's picture of the
            # last tone fades over seconds, an onset is of now) at the other's frequency
            since = back["wall"]
            wait_for(lambda: heard_since(b, FREQ_A, since), "B hearing A again", DEADLINE_S)
            print(f"SIGKILL -> B hears A again: {time.monotonic() - killed:.2f} s")
            wait_for(lambda: heard_since(a, FREQ_B, since), "A hearing B again", DEADLINE_S)
            print(f"SIGKILL -> A hears B again: {time.monotonic() - killed:.2f} s")
            # sato's session on the dead node is gone from B's list, its new one is there
            wait_for(lambda: people(b) == ["kato", "sato"], "B listing sato once", DEADLINE_S)
            wait_for(lambda: people(a) == ["sato", "kato"], "A listing kato", DEADLINE_S)
            wait_for(lambda: talking(b, "sato") == "true", "B seeing sato talk again", DEADLINE_S)
            assert connected(a) and connected(b)
            # B's own connection to the survivor never dropped
            assert events(b, "lost", 0) == [] and state(b)[0] == "joined"
            for name, page in (("a", a), ("b", b)):
                page.screenshot(path=str(tmp_path / f"{name}-after.png"), full_page=True)
            print(f"screenshots in {tmp_path}")
            for page in pages:
                assert not page.errors, page.errors
        finally:
            for page in pages:
                page.context.browser.close()
