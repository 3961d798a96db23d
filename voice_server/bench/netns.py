"""A private network namespace where browsers can do WebRTC on 127.0.0.0/8 (tests, benchmarks).

Chromium offers no ICE candidate on a loopback-flagged interface, not even for 127.0.0.2 on
``lo``. What works (docs: FACTS): a fresh network namespace with ``lo`` up and a veth pair whose
both ends stay inside it, one end carrying ``127.0.0.2/32``. Every address stays in 127.0.0.0/8
and nothing can leave the namespace: it has no route to any other. The veths get no IPv6 address
(:func:`add_veth`): a link-local one coming later is a network change to Chromium.

:func:`isolated` moves the *calling thread* (and so every process or thread it starts
afterwards) into such a namespace with ``unshare(CLONE_NEWNET)`` and moves it back with
``setns`` when the block ends; the namespace disappears with its last user. Threads that existed
before keep the namespace they had. Needs CAP_SYS_ADMIN (root); :func:`available` says whether
it can work here, without changing anything.

``python -m voice_server.bench.netns CMD ...`` runs one command inside a fresh namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence

__all__ = ["BROWSER_ADDRESS", "NetnsError", "add_veth", "available", "isolated", "main"]

CLONE_NEWNET = 0x40000000
BROWSER_ADDRESS = "127.0.0.2"
_VETH = ("vsveth0", "vsveth1")


class NetnsError(RuntimeError):
    """The namespace could not be made (not root, no ``ip`` command, no veth support)."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def available() -> str | None:
    """None when :func:`isolated` can work here, else the reason it cannot (one line)."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "making a network namespace needs root (CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian package iproute2) is missing"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")


def add_veth(pair: tuple[str, str], address: str) -> None:
    """A veth pair with both ends in the current namespace, ``address`` (/32) on the first, both
    up, and no IPv6 address of their own: the kernel would otherwise give each end a link-local
    address 1-2 s later, once duplicate address detection ends, and Chromium takes that for a
    network change and fails every HTTP request in flight with ``ERR_NETWORK_CHANGED`` (a page
    loading then misses some of its scripts and never starts: bench network's handovers). Their
    state is final when this returns."""
    _ip("link", "add", pair[0], "type", "veth", "peer", "name", pair[1])
    for dev in pair:
        _ip("link", "set", "dev", dev, "addrgenmode", "none")
    _ip("addr", "add", f"{address}/32", "dev", pair[0])
    for dev in pair:
        _ip("link", "set", dev, "up")


def _configure() -> None:
    """Inside the new namespace: lo up, a veth pair (both ends here), 127.0.0.2 on one end."""
    _ip("link", "set", "lo", "up")
    add_veth(_VETH, BROWSER_ADDRESS)


@contextlib.contextmanager
def isolated() -> Iterator[None]:
    """Run the block (and everything it starts) in a fresh, configured network namespace."""
    reason = available()
    if reason is not None:
        raise NetnsError(reason)
    libc = _libc()
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
        try:
            _configure()
            yield
        finally:
            if libc.setns(original, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"setns back to the original namespace failed: {os.strerror(err)}")
    finally:
        os.close(original)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``argv`` in a fresh namespace and return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m voice_server.bench.netns CMD [ARG ...]", file=sys.stderr)
        return 2
    try:
        with isolated():
            return subprocess.call(args)
    except NetnsError as exc:
        print(f"netns: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
