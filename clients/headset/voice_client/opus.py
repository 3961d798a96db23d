"""Seam: speech-sized Opus for aiortc's sender (aiortc 1.16.0 only).

aiortc's ``OpusEncoder`` is fixed at 96 kbps stereo (~300-byte packets). Speech needs far less:
:func:`speech_opus` swaps in a subclass that encodes mono at ``bitrate`` (default 24 kbps) for
the duration of a ``with`` block. ``aiortc.codecs.get_encoder`` looks ``OpusEncoder`` up in its
module globals when a sender starts, so senders started inside the block use the subclass. The
SDP stays ``opus/48000/2`` (RFC 7587: that is the only way to write Opus; a mono stream is valid
and every decoder plays it).

What aiortc 1.16 already does, so this seam does not: ``RTCRtpSender`` writes the RFC 6464
audio-level extension (``urn:ietf:params:rtp-hdrext:ssrc-audio-level``) with the negotiated id,
but only when the track yields ``av.AudioFrame`` objects that it encodes itself (it computes the
level from the frame, RFC 6465 Appendix A, V flag always 0). A track that yields pre-encoded
``av.Packet`` objects gets no level. The headset client yields frames.

Pinned: :func:`check_aiortc` refuses any other aiortc, and ``tests/unit/test_client_opus.py``
fails loudly if the patched names change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiortc
import aiortc.codecs
import aiortc.codecs.opus
import av

from voice_client.pinned import require_version

__all__ = ["DEFAULT_BITRATE", "SUPPORTED_AIORTC", "check_aiortc", "speech_opus"]

SUPPORTED_AIORTC = "1.16.0"
DEFAULT_BITRATE = 24_000
_PATCHED = "OpusEncoder"  # the name aiortc.codecs.get_encoder looks up


def check_aiortc() -> None:
    """Raise RuntimeError unless the installed aiortc has the internals this seam replaces."""
    require_version(
        aiortc, SUPPORTED_AIORTC, "voice_client.opus", "aiortc.codecs.get_encoder / OpusEncoder"
    )
    if getattr(aiortc.codecs, _PATCHED, None) is None:
        raise RuntimeError("aiortc.codecs.OpusEncoder is gone: update voice_client.opus")


def _speech_encoder_class(bitrate: int) -> type[Any]:
    base: type[Any] = aiortc.codecs.opus.OpusEncoder

    class SpeechOpusEncoder(base):  # type: ignore[misc]
        """aiortc's OpusEncoder, mono at a speech bitrate (set before the codec opens)."""

        def __init__(self) -> None:
            super().__init__()
            self.codec.bit_rate = bitrate
            self.codec.layout = "mono"
            self.resampler = av.AudioResampler(
                format="s16",
                layout="mono",
                rate=aiortc.codecs.opus.SAMPLE_RATE,
                frame_size=aiortc.codecs.opus.SAMPLES_PER_FRAME,
            )

    return SpeechOpusEncoder


@contextmanager
def speech_opus(bitrate: int = DEFAULT_BITRATE) -> Iterator[type[Any]]:
    """Within the block, aiortc senders encode Opus mono at ``bitrate`` bits per second."""
    check_aiortc()
    if not 6_000 <= bitrate <= 510_000:
        raise ValueError("Opus bitrate must be within 6000..510000")
    original = getattr(aiortc.codecs, _PATCHED)
    encoder = _speech_encoder_class(bitrate)
    setattr(aiortc.codecs, _PATCHED, encoder)
    try:
        yield encoder
    finally:
        setattr(aiortc.codecs, _PATCHED, original)
