"""The forwarding loop's inner part in C, built on this machine at first use (optional).

Per forwarded copy the Python loop of :mod:`~voice_server.media.fanout` costs about 1.5–2 µs
besides libsrtp and the kernel (a bound-method call, a buffer copy, two cffi cell accesses, the
``iov_len`` store): about a fifth of the server's CPU at a thousand participants, which is the
difference between 5 ms and 50 ms of added latency at the 99th percentile (a busy event loop
queues the next packets behind each fan-out). :func:`fan_send` does, for a range of listeners in
one C call: copy the packet into each listener's libsrtp buffer, ``srtp_protect`` it, set its
length, then ``sendmmsg`` the lot (skipping and counting what failed).

No Python headers, no build step in the package: the C below is compiled with the system's C
compiler (``cc``, ``$CC``) into a plain shared library the first time a process needs it, cached
per user (``$XDG_CACHE_HOME/voice-server`` or ``~/.cache/voice-server``, created 0700 and checked
to be the user's own before anything is loaded from it), keyed by a hash of the source, and
loaded through cffi's ABI mode. libsrtp is not linked: the caller passes the address of
``srtp_protect`` from pylibsrtp's own binding. Without a compiler (or with ``VOICE_NATIVE=0``)
:func:`load` returns None and the forwarding loop stays in Python, with the same results
(``tests/unit/test_media_native.py`` compares the bytes sent both ways).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from voice_server.media.sendmany import AVAILABLE as MMSG_AVAILABLE
from voice_server.media.sendmany import ffi

__all__ = ["SOURCE", "cache_dir", "load"]

log = logging.getLogger(__name__)

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

/* Protect `data` (n bytes) for listeners [start, stop) of a batch except `skip` (an index in
   the batch, or -1), each into its own buffer bufs[i] (which msgs[i]'s iovec points at), and
   send them with sendmmsg. `scratch` has room for the batch. A copy that cannot be protected
   or sent is skipped and counted. out: sent, failed, octets sent. */
void fan_send(int fd, void *protect, void **ctxs, char **bufs, struct mmsghdr *msgs,
              struct mmsghdr *scratch, int start, int stop, int skip, int room,
              const char *data, int n, long long *out)
{
    protect_fn fn = (protect_fn)protect;
    long long sent = 0, failed = 0, octets = 0;
    int k = 0;
    if (n > room) {
        out[0] = 0;
        out[1] = stop - start - (skip >= start && skip < stop);
        out[2] = 0;
        return;
    }
    for (int i = start; i < stop; i++) {
        if (i == skip)
            continue;
        int len = n;
        memcpy(bufs[i], data, (size_t)n);
        if (fn(ctxs[i], bufs[i], &len) != 0) {
            failed++;
            continue;
        }
        msgs[i].msg_hdr.msg_iov->iov_len = (size_t)len;
        scratch[k++] = msgs[i];
        octets += len;
    }
    int at = 0;
    while (at < k) {
        int r = sendmmsg(fd, scratch + at, (unsigned int)(k - at), MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            r = 0;
        }
        sent += r;
        at += r;
        if (at < k) {
            failed++;
            octets -= (long long)scratch[at].msg_hdr.msg_iov->iov_len;
            at++;
        }
    }
    out[0] = sent;
    out[1] = failed;
    out[2] = octets;
}
"""

_CDEF = """
    void fan_send(int fd, void *protect, void **ctxs, char **bufs, struct mmsghdr *msgs,
                  struct mmsghdr *scratch, int start, int stop, int skip, int room,
                  const char *data, int n, long long *out);
"""
ffi.cdef(_CDEF)

_loaded: Any = None
_tried = False


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voice-server"


def _private_dir(path: Path) -> bool:
    """Create ``path`` 0700 if needed; True when it is this user's and nobody else can write."""
    with contextlib.suppress(OSError):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def _build(target: Path) -> bool:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        log.info("native fan-out: no C compiler; forwarding stays in Python")
        return False
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "fan.c"
        src.write_text(SOURCE)
        out = Path(tmp) / target.name
        cmd = [*shlex.split(cc), "-O2", "-shared", "-fPIC", "-o", str(out), str(src)]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", b"") or b""
            log.warning(
                "native fan-out: build failed; forwarding stays in Python",
                extra={"error": str(exc)[:200], "stderr": detail.decode(errors="replace")[:500]},
            )
            return False
        out.chmod(0o700)
        os.replace(out, target)  # atomic: a concurrent loader sees the whole file or none
    return True


def load() -> Any:
    """The compiled library (cffi ABI handle with ``fan_send``), or None: not Linux, no
    compiler, ``VOICE_NATIVE=0``, or a build or load failure (logged once)."""
    global _loaded, _tried
    if _tried:
        return _loaded
    _tried = True
    if os.environ.get("VOICE_NATIVE", "1") == "0" or not MMSG_AVAILABLE:
        return None
    if not sys.platform.startswith("linux"):  # pragma: no cover
        return None
    digest = hashlib.sha256((SOURCE + sys.platform + os.uname().machine).encode()).hexdigest()
    root = cache_dir()
    if not _private_dir(root):
        log.info("native fan-out: cache %s is not private; forwarding stays in Python", root)
        return None
    target = root / f"fan-{digest[:16]}.so"
    try:
        with open(root / "build.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build when several processes start at once
            if not target.exists() and not _build(target):
                return None
        st = target.lstat()
        if st.st_uid != os.getuid() or st.st_mode & 0o022 or not stat.S_ISREG(st.st_mode):
            log.warning("native fan-out: %s is not this user's own file; not loaded", target)
            return None
        _loaded = ffi.dlopen(str(target))
    except OSError as exc:
        log.warning("native fan-out: not loaded (%s); forwarding stays in Python", exc)
        return None
    return _loaded


def reset_for_tests() -> None:
    global _loaded, _tried
    _loaded, _tried = None, False
