"""End-to-end fixtures: a private network namespace (browsers offer no ICE candidate on
loopback interfaces, see voice_server/bench/netns.py), a server inside it, and Debian's Chromium
driven by Playwright. Everything a test starts runs inside the namespace; every address is in
127.0.0.0/8."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.servers import ServerProcess, running_server
from voice_server.bench import browser, netns

T = TypeVar("T")


def wait_for(fn: Callable[[], T], what: str, timeout: float = 45.0) -> T:
    """Poll ``fn`` until it returns something true; its last value."""
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} (last: {last!r})")
        time.sleep(0.1)
        last = fn()
    return last


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = netns.available() or browser.missing()
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def namespace() -> Iterator[None]:
    with netns.isolated():
        yield


@pytest.fixture(scope="module")
def e2e_server(
    namespace: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {"VOICE_GRACE_SECONDS": "4", "VOICE_TOKEN_WARNING_SECONDS": "10"}
    with running_server(tmp_path_factory.mktemp("e2e"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def pw(namespace: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def device_link(server: ServerProcess, token: str, channel: str = "ops", **extra: str) -> str:
    params = {"channel": channel, "token": token, "autojoin": "1", "diag": "1", **extra}
    return f"{server.url}/#" + "&".join(f"{k}={v}" for k, v in params.items())


def open_page(
    pw: Any,
    url: str,
    *,
    audio: Path | None,
    autoplay: bool = True,
    args: tuple[str, ...] = (),
    executable: str | None = None,
) -> Any:
    b = browser.launch_chromium(
        pw, audio_file=audio, autoplay=autoplay, extra_args=args, executable=executable
    )
    page = b.new_page(locale="en-US")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url)
    return page
