"""``voice-server bench alerts``: how fast an emergency and a spoken keyword reach a supervisor's
dashboard and the city's systems.

A server child process (token-only: API tokens of a staff member, a supervisor and an admin),
a supervisor's dashboard event stream (``/dashboard/events/ws``: what every dashboard page's
banner listens to) and, in the same run, the obvious alternative to that push: a dashboard that
polls ``GET /api/v1/alerts`` every second. A local HTTP receiver takes the signed webhooks.

- ``emergency.banner_ms``: just before ``POST /api/v1/emergencies`` (the end of the countdown)
  → the alert on the event stream (then the staff member cancels it, so the next may be raised);
- ``keyword.banner_ms``: an utterance committed into the store as the transcriber sidecar does
  (another process) → its keyword alert on the event stream;
- ``keyword.webhook_ms``: the same commit → the signed ``keyword_alert.raised`` received;
- ``*.poll_ms``: the same events as the 1 s poller first saw them.

Reports p50/p95/max, the ratio poll/push at p95, and the load average before and after.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import websockets

from voice_server.bench.serverproc import HOST, ServerChild
from voice_server.bench.stats import percentiles
from voice_server.calllog.model import Utterance, new_burst_id
from voice_server.calllog.sqlite import SqliteCallLog
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.tokens import Audience, Role, issue_token
from voice_server.store.database import Database

__all__ = ["format_summary", "run_alerts_bench"]

POLL_S = 1.0


def _token(data_dir: Path, sub: str, role: Role) -> str:
    return issue_token(
        load_or_create_key(data_dir), sub=sub, name=sub, channels=["ops"], role=role,
        aud=Audience.API, now=int(time.time()), ttl_seconds=3600,
    )  # fmt: skip


def _call(port: int, token: str, method: str, path: str, body: Any = None) -> Any:
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


@contextmanager
def _receiver(seen: dict[str, float]) -> Iterator[str]:
    """A plain HTTP webhook receiver: utterance id -> arrival (perf_counter)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            data = json.loads(body).get("data", {})
            if data.get("utterance_id"):
                seen.setdefault(str(data["utterance_id"]), time.perf_counter())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


class _Watch:
    """Where each alert was first seen: on the event stream and by the poller."""

    def __init__(self) -> None:
        self.pushed: dict[str, float] = {}  # key (alert id, utterance id) -> perf_counter
        self.polled: dict[str, float] = {}
        self.event = asyncio.Event()

    @staticmethod
    def keys(alert: dict[str, Any]) -> list[str]:
        return [k for k in (alert.get("id"), alert.get("utterance")) if k]

    async def stream(self, port: int, token: str) -> None:
        url = f"ws://{HOST}:{port}/dashboard/events/ws"
        async with websockets.connect(
            url, additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "alert":
                    now = time.perf_counter()
                    for k in self.keys(msg["alert"]):
                        self.pushed.setdefault(k, now)
                    self.event.set()

    async def poll(self, port: int, token: str) -> None:
        while True:
            items = await asyncio.to_thread(_call, port, token, "GET", "/api/v1/alerts?state=all")
            now = time.perf_counter()
            for alert in items["items"]:
                for k in self.keys(alert):
                    self.polled.setdefault(k, now)
            await asyncio.sleep(POLL_S)

    async def wait(self, table: dict[str, float], key: str, within: float = 30.0) -> float:
        deadline = time.monotonic() + within
        while key not in table:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no alert for {key} within {within:.0f} s")
            await asyncio.sleep(0.01)
        return table[key]


def _commit(data_dir: Path, text: str) -> str:
    """An utterance committed by another process, as the transcriber sidecar commits."""
    now = int(time.time() * 1000)
    burst = new_burst_id(now)
    db = Database(data_dir / "voice.db")
    try:
        SqliteCallLog(db).add_utterance(
            Utterance(burst, "ops", "bench-staff", "Bench", now - 1500, now, text,
                      model="bench", language="ja"),
            committed_ms=now,
        )  # fmt: skip
    finally:
        db.close()
    return burst


async def _run(data_dir: Path, rounds: int) -> dict[str, Any]:
    server = ServerChild(data_dir, "ops")
    staff = _token(data_dir, "bench-staff", Role.STAFF)
    sup = _token(data_dir, "bench-sup", Role.SUPERVISOR)
    admin = _token(data_dir, "bench-admin", Role.ADMIN)
    await server.start()
    watch = _Watch()
    tasks = []
    hooks: dict[str, float] = {}
    out: dict[str, list[float]] = {
        "emergency.banner_ms": [],
        "emergency.poll_ms": [],
        "keyword.banner_ms": [],
        "keyword.poll_ms": [],
        "keyword.webhook_ms": [],
    }
    try:
        with _receiver(hooks) as hook_url:
            keywords = {"keywords": ["火事", "救急", "不審者", "ガス漏れ"]}
            await asyncio.to_thread(
                _call, server.port, admin, "PUT", "/api/v1/alert-keywords", keywords
            )
            hook = {"url": hook_url, "events": ["keyword_alert.raised"]}
            await asyncio.to_thread(_call, server.port, admin, "POST", "/api/v1/webhooks", hook)
            tasks = [
                asyncio.create_task(watch.stream(server.port, sup)),
                asyncio.create_task(watch.poll(server.port, sup)),
            ]
            await asyncio.sleep(1.5)
            load_before = os.getloadavg()
            for i in range(rounds):
                t0 = time.perf_counter()
                raised = await asyncio.to_thread(
                    _call, server.port, staff, "POST", "/api/v1/emergencies", {"channel": "ops"}
                )
                pushed = await watch.wait(watch.pushed, raised["id"])
                polled = await watch.wait(watch.polled, raised["id"])
                out["emergency.banner_ms"].append((pushed - t0) * 1000)
                out["emergency.poll_ms"].append((polled - t0) * 1000)
                await asyncio.to_thread(
                    _call, server.port, staff, "POST", f"/api/v1/emergencies/{raised['id']}/cancel"
                )
                t0 = time.perf_counter()
                burst = await asyncio.to_thread(_commit, data_dir, f"東 門 で 火事 です {i}")
                pushed = await watch.wait(watch.pushed, burst)
                hooked = await watch.wait(hooks, burst)
                polled = await watch.wait(watch.polled, burst)
                out["keyword.banner_ms"].append((pushed - t0) * 1000)
                out["keyword.webhook_ms"].append((hooked - t0) * 1000)
                out["keyword.poll_ms"].append((polled - t0) * 1000)
            load_after = os.getloadavg()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.stop()
    figures: dict[str, Any] = {}
    for name, values in out.items():
        figures[name] = {
            **{k: round(v, 1) for k, v in percentiles(values, (50, 95)).items()},
            "max": round(max(values), 1),
            "n": len(values),
        }
    for kind in ("emergency", "keyword"):
        push, poll = figures[f"{kind}.banner_ms"]["p95"], figures[f"{kind}.poll_ms"]["p95"]
        figures[f"{kind}.poll_over_push_p95"] = round(poll / max(push, 0.1), 1)
    figures["load_before"] = [round(x, 2) for x in load_before]
    figures["load_after"] = [round(x, 2) for x in load_after]
    figures["rounds"] = rounds
    return figures


def run_alerts_bench(rounds: int = 30) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        return asyncio.run(_run(Path(tmp), rounds))


def format_summary(r: dict[str, Any]) -> str:
    lines = [f"alerts: {r['rounds']} emergencies and {r['rounds']} keyword commits"]
    for name in (
        "emergency.banner_ms",
        "emergency.poll_ms",
        "keyword.banner_ms",
        "keyword.poll_ms",
        "keyword.webhook_ms",
    ):
        f = r[name]
        lines.append(f"  {name:<22} p50 {f['p50']:8.1f}  p95 {f['p95']:8.1f}  max {f['max']:8.1f}")
    lines.append(
        f"  1 s polling / event stream at p95: emergency x{r['emergency.poll_over_push_p95']}, "
        f"keyword x{r['keyword.poll_over_push_p95']}"
    )
    lines.append(f"  load average before {r['load_before']} after {r['load_after']}")
    return "\n".join(lines)
