"""The organisation the announcement tests share: supervisor ``boss`` of channel ``a`` (not
``b``), staff ``ma`` a member of ``a``."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.servers import ServerProcess


def boss_of_a(server: ServerProcess) -> dict[str, str]:
    """Create the accounts; the headers of boss's API token (naming both channels)."""
    server.cli("users", "add", "boss", "--role", "supervisor", "--no-password")
    server.cli("users", "add", "ma", "--role", "staff", "--no-password", "--channel", "a")
    server.cli("channels", "assign", "a", "--supervisor", "boss")
    token = server.token("boss", "a", "b", role="supervisor", aud="api")
    return {"Authorization": f"Bearer {token}"}


def wait_done(c: httpx.Client, url: str, ann_id: str, timeout_s: float = 90) -> dict[str, Any]:
    """An announcement's record once it is no longer ``playing`` (polled)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = c.get(f"{url}/api/v1/announcements/{ann_id}").json()
        if body["status"] != "playing":
            return body
        time.sleep(0.3)
    raise AssertionError("the announcement never finished")
