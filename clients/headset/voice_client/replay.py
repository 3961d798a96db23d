"""The headset's replay key and announcement cue.

- **Replay**: a key press (``--replay-key``, default ``r``; a terminal key) asks the server for
  the channel's last 24 h (``GET /api/v1/replay/<channel>`` with the client's join token) and
  plays what this user missed (no connected media on any of their devices), oldest first, each
  announced by a ``replay`` event (speaker, time, text when transcribed) and then its clip.
- **Cue**: ``talk_started`` with ``kind: "announcement"`` plays a short two-note chime first
  (announcement clips hold speech only).

The URL and list logic and the chime are pure; fetching (urllib in a worker thread) and decoding
(PyAV, already a dependency through aiortc) are the I/O seams.
"""

from __future__ import annotations

import io
import json
import math
import ssl
import struct
import urllib.request
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = [
    "RATE",
    "chime_pcm",
    "decode_clip",
    "fetch_bytes",
    "fetch_json",
    "http_base",
    "missed_in_order",
    "replay_url",
]

RATE = 48_000
MAX_CLIP_BYTES = 16 * 1024 * 1024


def http_base(ws_url: str) -> str:
    """``ws(s)://host:port/prefix/ws`` -> ``http(s)://host:port/prefix``."""
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    path = parts.path.removesuffix("/ws")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def replay_url(ws_url: str, channel: str) -> str:
    return f"{http_base(ws_url)}/api/v1/replay/{quote(channel, safe='')}"


def missed_in_order(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The missed items with a clip, oldest first (the server lists newest first)."""
    items = [i for i in body.get("items", []) if i.get("missed") and i.get("clip_url")]
    return list(reversed(items))


def fetch_json(
    url: str, token: str, timeout: float = 15.0, context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """GET with the bearer token (blocking: call it in a worker thread); ``context``: the TLS
    context trusting ``--ca-file``."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout, context=context) as res:
        body: dict[str, Any] = json.loads(res.read(MAX_CLIP_BYTES))
    return body


def fetch_bytes(url: str, timeout: float = 15.0, context: ssl.SSLContext | None = None) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout, context=context) as res:
        data: bytes = res.read(MAX_CLIP_BYTES)
    return data


def decode_clip(data: bytes) -> bytes:
    """Ogg/Opus (or any format PyAV reads) -> PCM48 mono s16le."""
    import av

    out = bytearray()
    with av.open(io.BytesIO(data), mode="r") as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for frame in container.decode(audio=0):
            for mono in resampler.resample(frame):
                out += bytes(mono.planes[0])[: mono.samples * 2]
        for mono in resampler.resample(None):
            out += bytes(mono.planes[0])[: mono.samples * 2]
    return bytes(out)


def chime_pcm(amplitude: int = 6000) -> bytes:
    """Two short notes (E6 then C6, 0.15 s each, faded) as PCM48 mono s16le."""
    out = bytearray()
    for freq in (1318.5, 1046.5):
        n = int(RATE * 0.15)
        for i in range(n):
            fade = min(1.0, i / 480, (n - i) / 480)
            out += struct.pack(
                "<h", int(amplitude * fade * math.sin(2 * math.pi * freq * i / RATE))
            )
    return bytes(out)
