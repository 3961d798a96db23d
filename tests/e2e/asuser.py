"""Chromium as another (unprivileged) user, so that nftables rules matching that user's sockets
(``meta skuid``) shape only that browser's network: one phone on a network that drops UDP,
another on one that allows only HTTPS, in the same namespace as a phone with full access."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voice_server.bench.browser import find_chromium

NOBODY = 65534
# Playwright makes the profile folder as root: hand it over, then drop to the user
WRAPPER = """#!/bin/sh
for a in "$@"; do
  case "$a" in --user-data-dir=*) chown -R {uid}:{uid} "${{a#--user-data-dir=}}";; esac
done
export HOME={home}
exec setpriv --reuid={uid} --regid={uid} --clear-groups {chromium} "$@"
"""


def missing() -> str | None:
    if shutil.which("nft") is None or shutil.which("setpriv") is None or find_chromium() is None:
        return "needs nftables, setpriv (util-linux) and chromium"
    return None


@contextmanager
def chromium_as(uid: int) -> Iterator[tuple[str, Path]]:
    """A Chromium wrapper running as ``uid``, and its home folder (put its WAV files there)."""
    home = Path(tempfile.mkdtemp(prefix=f"voice-uid{uid}-"))
    os.chmod(home, 0o755)
    os.chown(home, uid, uid)
    wrapper = home / "chromium-as-user"
    wrapper.write_text(WRAPPER.format(uid=uid, home=home, chromium=find_chromium()))
    wrapper.chmod(0o755)
    try:
        yield str(wrapper), home
    finally:
        shutil.rmtree(home, ignore_errors=True)
