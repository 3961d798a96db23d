"""An announcement's audio: the text synthesised once (Open JTalk for Japanese, espeak-ng for
English when installed), encoded to 20 ms Opus frames once, with each frame's RFC 6464 level.

Every frame of the clip is sent as voiced (its level at most :data:`HELD_DBOV`): the pauses
between phrases must not end the talk burst (its slot, its call-log row) mid-announcement.
Heavy imports (numpy, PyAV, the Open JTalk wheel) happen on first use, never at server start.
"""

from __future__ import annotations

import fractions
import math
import shutil
import subprocess
from dataclasses import dataclass

from voice_server.announce.request import AnnounceError

__all__ = [
    "FRAME_SAMPLES",
    "HELD_DBOV",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_SECONDS",
    "RATE",
    "Clip",
    "decode_upload",
    "encode",
    "levels",
    "recorded",
    "render",
]

RATE = 48000
FRAME_SAMPLES = 960  # 20 ms
HELD_DBOV = 40  # the talk detector's voiced threshold is 50
LEAD_SECONDS = 0.5  # silence before the voice: the clients' chime plays, jitter buffers settle
TAIL_SECONDS = 0.3
GAP_SECONDS = 1.0  # between repeats
BITRATE = 32_000
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # a recorded announcement's file
MAX_UPLOAD_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class Clip:
    frames: tuple[bytes, ...]  # Opus, 20 ms each
    levels: tuple[int, ...]  # dBov per frame (0 loudest .. 127 silence), at most HELD_DBOV
    pcm: bytes  # the 48 kHz 16-bit mono PCM they encode (checks, the first-packet bench)

    @property
    def seconds(self) -> float:
        return len(self.frames) * FRAME_SAMPLES / RATE


def levels(pcm: bytes) -> tuple[int, ...]:
    """RFC 6464 level (−dBov, 0..127) of each 20 ms frame of 16-bit PCM (pure)."""
    import numpy as np

    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    out = []
    for start in range(0, len(samples), FRAME_SAMPLES):
        frame = samples[start : start + FRAME_SAMPLES]
        rms = math.sqrt(float(np.mean(frame * frame))) if len(frame) else 0.0
        out.append(127 if rms < 1 else min(127, max(0, round(-20 * math.log10(rms / 32768)))))
    return tuple(out)


def _japanese(text: str) -> bytes:
    from voice_server.tts import openjtalk

    try:
        reading = openjtalk.phonemes(text)
    except openjtalk.TtsUnavailable as exc:
        raise AnnounceError("tts_unavailable", str(exc), 503) from None
    if not reading.strip():
        raise AnnounceError("unspeakable_text", "Open JTalk finds nothing to read in the text")
    try:
        speech = openjtalk.synthesize(text)
    except Exception as exc:  # the engine's own failure: the request fails, the server does not
        raise AnnounceError("tts_failed", f"synthesis failed: {exc}") from None
    if speech.rate != RATE or not speech.pcm:
        raise AnnounceError("tts_failed", f"synthesis gave {speech.rate} Hz, no audio")
    return speech.pcm


def _english(text: str) -> bytes:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AnnounceError("language_unavailable", "English speech needs espeak-ng installed")
    try:
        wav = subprocess.run(
            [exe, "--stdout", "--", text], capture_output=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise AnnounceError("tts_failed", f"espeak-ng failed: {exc}") from None
    return _resample_wav(wav)


def _resample_wav(wav: bytes) -> bytes:
    return _decode(wav, "wav", None)


def _decode(data: bytes, fmt: str | None, max_seconds: float | None) -> bytes:
    """Any audio PyAV reads -> 48 kHz mono s16; stops as soon as it is over ``max_seconds``."""
    import io

    import av

    limit = None if max_seconds is None else int(max_seconds * RATE * 2)
    out = bytearray()
    with av.open(io.BytesIO(data), mode="r", format=fmt) as container:
        if not container.streams.audio:
            raise AnnounceError("not_audio", "the file holds no audio", 415)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in container.decode(audio=0):
            for f in resampler.resample(frame):
                out += bytes(f.planes[0])[: f.samples * 2]
            if limit is not None and len(out) > limit:
                raise AnnounceError(
                    "too_long", f"a recording may last at most {max_seconds:.0f} s", 422
                )
        for f in resampler.resample(None):
            out += bytes(f.planes[0])[: f.samples * 2]
    if limit is not None and len(out) > limit:
        raise AnnounceError("too_long", f"a recording may last at most {max_seconds:.0f} s", 422)
    return bytes(out)


def decode_upload(data: bytes) -> bytes:
    """A recorded announcement's file (any format PyAV reads: WAV, MP3, M4A/AAC, Ogg, FLAC,
    WebM …) as 48 kHz mono PCM. AnnounceError: not audio (415), too large (413), too long or
    silent (422)."""
    import av

    if len(data) > MAX_UPLOAD_BYTES:
        raise AnnounceError("too_large", "a recording may be at most 10 MB", 413)
    try:
        pcm = _decode(data, None, MAX_UPLOAD_SECONDS)
    except AnnounceError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, EOFError) as exc:
        raise AnnounceError(
            "not_audio", f"the file is not audio PyAV can read ({exc})", 415
        ) from None
    if len(pcm) < RATE * 2 // 10:
        raise AnnounceError("not_audio", "the recording holds less than 0.1 s of audio", 422)
    return pcm


def recorded(pcm: bytes, repeat: int = 1) -> bytes:
    """The PCM of a recorded announcement, framed like a spoken one (lead, repeats, tail)."""
    gap = b"\0\0" * int(RATE * GAP_SECONDS)
    body = gap.join([pcm] * repeat)
    return b"\0\0" * int(RATE * LEAD_SECONDS) + body + b"\0\0" * int(RATE * TAIL_SECONDS)


def render(text: str, language: str = "ja", repeat: int = 1) -> bytes:
    """The PCM of the whole announcement: lead, the text ``repeat`` times with a gap, tail."""
    voice = _japanese(text) if language == "ja" else _english(text)
    return recorded(voice, repeat)


def encode(pcm: bytes) -> Clip:
    """20 ms Opus frames of ``pcm`` (padded to whole frames) and their held levels."""
    import av

    size = FRAME_SAMPLES * 2
    if len(pcm) % size:
        pcm += b"\0" * (size - len(pcm) % size)
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = BITRATE
    codec.time_base = fractions.Fraction(1, RATE)
    frames: list[bytes] = []
    count = len(pcm) // size
    for i in range(count):
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.sample_rate = RATE
        frame.pts = i * FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, RATE)
        frame.planes[0].update(pcm[i * size : (i + 1) * size])
        frames.extend(bytes(p) for p in codec.encode(frame))
    frames.extend(bytes(p) for p in codec.encode(None))
    frames = frames[:count]
    held = tuple(min(level, HELD_DBOV) for level in levels(pcm))[: len(frames)]
    return Clip(tuple(frames), held, pcm)
