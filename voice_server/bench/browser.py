"""Debian's Chromium driven by Playwright (tests and ``bench latency``): never a downloaded browser.

The flags are the ones measured to work headless as root (docs: FACTS): fake media devices whose
microphone plays a WAV file (one file per browser process, so two talkers need two browsers),
no mDNS hiding of local addresses (the server must see the 127.0.0.2 candidate), no network
services of the browser's own. Playwright is a test dependency: it is imported only here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM_FLAGS", "find_chromium", "launch_chromium", "missing"]

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
)


def find_chromium() -> str | None:
    """``VOICE_CHROMIUM`` or Debian's ``chromium`` on the PATH."""
    explicit = os.environ.get("VOICE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing() -> str | None:
    """None when a browser can be launched, else what is missing (one line)."""
    if find_chromium() is None:
        return "Chromium is not installed (Debian package 'chromium'; scripts/install-test-deps.sh)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the Python package 'playwright' is missing (pip install -e '.[test]')"
    return None


def launch_chromium(
    playwright: Any,
    *,
    audio_file: Path | None = None,
    autoplay: bool = True,
    extra_args: tuple[str, ...] = (),
    executable: str | None = None,
) -> Any:
    """A headless Chromium whose fake microphone plays ``audio_file`` (looped); ``executable``
    replaces the browser found by :func:`find_chromium` (a wrapper script, in tests)."""
    executable = executable or find_chromium()
    if executable is None:
        raise RuntimeError(missing() or "no chromium")
    args = [*CHROMIUM_FLAGS, *extra_args]
    if audio_file is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio_file}")
    if autoplay:
        args.append("--autoplay-policy=no-user-gesture-required")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=args)
