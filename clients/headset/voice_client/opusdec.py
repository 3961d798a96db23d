"""libopus's decoder through ctypes: packet loss concealment and in-band FEC.

FFmpeg's libopus wrapper (what aiortc decodes with, through PyAV) always calls ``opus_decode``
with ``decode_fec = 0`` and takes an empty packet for end of stream, so it can neither conceal
a missing frame nor recover it from the next packet's FEC. :class:`OpusPlc` calls libopus
itself: the system's ``libopus.so.0`` where there is one, else the copy PyAV's wheel bundles
(``av.libs/libopus-*.so*``; PyAV is aiortc's dependency, so it is always installed).

* :meth:`OpusPlc.decode`: one packet;
* :meth:`OpusPlc.conceal`: ``samples`` of packet loss concealment (``opus_decode(NULL)``);
* :meth:`OpusPlc.recover`: the frame before ``next_packet`` from its in-band FEC
  (``decode_fec = 1``; libopus conceals when that packet carries none).

Each returns interleaved signed 16-bit PCM at 48 kHz (``channels`` of it), or raises
:class:`OpusError`. One decoder per stream, used from one thread at a time (aiortc's decoder
thread); ctypes releases the GIL during the calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

__all__ = ["MAX_FRAME_SAMPLES", "OpusError", "OpusPlc", "load_libopus"]

RATE = 48_000
MAX_FRAME_SAMPLES = 5760  # 120 ms at 48 kHz: the longest Opus packet


class OpusError(RuntimeError):
    """libopus refused a packet (or could not be loaded)."""


@functools.cache
def load_libopus() -> ctypes.CDLL:
    """The system's libopus, else PyAV's bundled copy; OpusError when neither loads."""
    candidates: list[str] = []
    found = ctypes.util.find_library("opus")
    if found:
        candidates.append(found)
    try:
        import av

        libs = Path(av.__file__).resolve().parent.parent / "av.libs"
        candidates += sorted(str(p) for p in libs.glob("libopus*.so*"))
    except ImportError:
        pass
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "opus_decode") and hasattr(lib, "opus_decoder_create"):
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [
                ctypes.c_int32,
                ctypes.c_int,
                ctypes.POINTER(ctypes.c_int),
            ]
            lib.opus_decoder_destroy.restype = None
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            lib.opus_decode.restype = ctypes.c_int
            lib.opus_decode.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int32,
                ctypes.POINTER(ctypes.c_int16),
                ctypes.c_int,
                ctypes.c_int,
            ]
            return lib
    raise OpusError("libopus not found (neither the system's nor PyAV's bundled copy)")


class OpusPlc:
    """An Opus decoder at 48 kHz that also conceals and recovers from FEC."""

    def __init__(self, channels: int = 2) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self._lib = load_libopus()
        self.channels = channels
        err = ctypes.c_int(0)
        self._dec = self._lib.opus_decoder_create(RATE, channels, ctypes.byref(err))
        if err.value != 0 or not self._dec:
            raise OpusError(f"opus_decoder_create failed ({err.value})")
        self._pcm = (ctypes.c_int16 * (MAX_FRAME_SAMPLES * channels))()

    def close(self) -> None:
        if self._dec:
            self._lib.opus_decoder_destroy(self._dec)
            self._dec = None

    def __del__(self) -> None:
        self.close()

    def _run(self, data: bytes | None, samples: int, fec: int) -> bytes:
        if not self._dec:
            raise OpusError("decoder closed")
        n = self._lib.opus_decode(
            self._dec, data, len(data) if data else 0, self._pcm, samples, fec
        )
        if n < 0:
            raise OpusError(f"opus_decode failed ({n})")
        return bytes(memoryview(self._pcm).cast("B")[: n * 2 * self.channels])

    def decode(self, packet: bytes) -> bytes:
        """One packet (an empty one is concealed as a 20 ms loss)."""
        if not packet:
            return self.conceal(960)
        return self._run(packet, MAX_FRAME_SAMPLES, 0)

    def conceal(self, samples: int) -> bytes:
        """``samples`` (a multiple of 2.5 ms) of packet loss concealment."""
        return self._run(None, _frame(samples), 0)

    def recover(self, next_packet: bytes, samples: int) -> bytes:
        """The ``samples`` before ``next_packet`` from its in-band FEC (else concealed)."""
        return self._run(next_packet, _frame(samples), 1)


def _frame(samples: int) -> int:
    if not 120 <= samples <= MAX_FRAME_SAMPLES or samples % 120:
        raise OpusError(f"a concealed frame must be 2.5-120 ms (got {samples} samples)")
    return samples
