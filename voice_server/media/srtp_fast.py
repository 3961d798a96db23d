"""SRTP protect/unprotect for the hot paths, calling libsrtp directly (a version-pinned seam).

``pylibsrtp.Session.protect`` costs ~1.2 µs here, of which libsrtp's AES-GCM is about half: the
rest is its Python wrapper (type and length checks, one ``ffi.new("int *")`` per call, an
exception helper). :class:`FastSrtp` keeps one length cell per session and calls
``srtp_protect``/``srtp_unprotect`` of pylibsrtp's own cffi binding on the session's own
1500-byte buffer: ~0.65 µs per protect. Failures return ``None`` instead of raising, so the
forwarding loop counts them without a ``try`` per copy.

The seam: pylibsrtp 1.0's ``Session`` keeps ``_srtp`` (``srtp_t *``), ``_cdata`` (``char[1500]``)
and ``_buffer`` (its ``ffi.buffer``), and ``pylibsrtp._binding`` exposes ``lib``/``ffi``.
When any of that is missing (another pylibsrtp), :func:`fast_session` falls back to the public
methods with the same contract (``tests/unit/test_media_srtp_fast.py`` checks both give the
same bytes as ``Session.protect``).

Like a ``Session``, one :class:`FastSrtp` must be used from one thread at a time (the event loop).
"""

from __future__ import annotations

from typing import Any

import pylibsrtp

__all__ = ["FAST", "PROTECT_ADDRESS", "ROOM", "FastSrtp", "PublicSrtp", "SrtpCodec", "fast_session"]

_BUFFER = 1500
_MAX_TRAILER = 16 + 128  # SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN, as pylibsrtp reserves
ROOM = _BUFFER - _MAX_TRAILER  # the largest packet that can be protected in place

try:
    from pylibsrtp._binding import ffi as _ffi
    from pylibsrtp._binding import lib as _lib

    _PROTECT: Any = _lib.srtp_protect
    _UNPROTECT: Any = _lib.srtp_unprotect
    #: address of libsrtp's ``srtp_protect`` (for :mod:`~voice_server.media.native`)
    PROTECT_ADDRESS = int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, "srtp_protect")))
    FAST = True
except (ImportError, AttributeError):  # pragma: no cover - another pylibsrtp
    FAST = False
    PROTECT_ADDRESS = 0


class FastSrtp:
    """``protect``/``unprotect`` of one ``pylibsrtp.Session`` → bytes, or None on any failure."""

    __slots__ = ("_buf", "_cdata", "_len", "_srtp", "session")

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session  # keeps the libsrtp context alive
        self._srtp: Any = session._srtp[0]
        self._cdata: Any = session._cdata
        self._buf: Any = session._buffer
        if len(self._buf) < _BUFFER:
            raise TypeError("unexpected pylibsrtp session buffer")
        self._len: Any = _ffi.new("int *")

    def protect(self, packet: bytes) -> bytes | None:
        n = len(packet)
        if n > _BUFFER - _MAX_TRAILER:
            return None
        buf = self._buf
        length = self._len
        buf[0:n] = packet
        length[0] = n
        if _PROTECT(self._srtp, self._cdata, length):
            return None
        out: bytes = buf[0 : length[0]]
        return out

    def protect_in_place(self, packet: bytes) -> int:
        """Protect into this session's own buffer (see :meth:`buffer_address`); returns the
        protected length, 0 on failure. The bytes stay valid until the next call."""
        n = len(packet)
        if n > _BUFFER - _MAX_TRAILER:
            return 0
        length = self._len
        self._buf[0:n] = packet
        length[0] = n
        if _PROTECT(self._srtp, self._cdata, length):
            return 0
        out: int = length[0]
        return out

    def context_address(self) -> int:
        """Address of the libsrtp context (``srtp_t``), alive with the session."""
        return int(_ffi.cast("uintptr_t", self._srtp))

    def buffer_address(self) -> int:
        """Address of the buffer :meth:`protect_in_place` writes to (alive with the session)."""
        return int(_ffi.cast("uintptr_t", self._cdata))

    def unprotect(self, packet: bytes) -> bytes | None:
        n = len(packet)
        if n > _BUFFER:
            return None
        buf = self._buf
        length = self._len
        buf[0:n] = packet
        length[0] = n
        if _UNPROTECT(self._srtp, self._cdata, length):
            return None
        out: bytes = buf[0 : length[0]]
        return out


class PublicSrtp:
    """The same contract through pylibsrtp's public methods (fallback)."""

    __slots__ = ("session",)

    def __init__(self, session: pylibsrtp.Session) -> None:
        self.session = session

    def protect(self, packet: bytes) -> bytes | None:
        try:
            out: bytes = self.session.protect(packet)
        except (pylibsrtp.Error, ValueError, TypeError):
            return None
        return out

    def unprotect(self, packet: bytes) -> bytes | None:
        try:
            out: bytes = self.session.unprotect(packet)
        except (pylibsrtp.Error, ValueError, TypeError):
            return None
        return out


SrtpCodec = FastSrtp | PublicSrtp


def fast_session(session: pylibsrtp.Session) -> SrtpCodec:
    """The fastest wrapper available for ``session`` (see the module docstring)."""
    if FAST:
        try:
            return FastSrtp(session)
        except (AttributeError, TypeError):  # pragma: no cover - another pylibsrtp
            pass
    return PublicSrtp(session)
