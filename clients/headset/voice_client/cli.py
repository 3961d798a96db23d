"""``voice-client``: join a channel as a standard aiortc WebRTC peer, talk from a WAV file,
record what is heard, print talk events as JSON lines.

    voice-client --server http://127.0.0.1:8000 --channel ops --token-file tok.txt \\
        --play hello.wav --record heard.wav --duration 20

stdout: one JSON object per event (``joined``, ``participant_joined``, ``participant_left``,
``talk_started``, ``talk_stopped``, ``slot_busy``, ``refreshed``, ``media``), each with ``t``,
seconds since start. stderr: one line per error or warning. Exit codes: 0 done, 1 runtime error
(unreachable server, lost connection, media never connected), 2 bad arguments or input file,
3 the server refused the join or ended the session with an error code (printed).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from voice_client.runner import ClientError, Options, run
from voice_client.signaling import websocket_url
from voice_client.wavio import WavError, read_pcm48

__all__ = ["build_parser", "main"]

EXIT_USAGE = 2
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname())[:48] or "host"
    return f"headset-{host}"


def _duration(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def _device_id(text: str) -> str:
    if not _DEVICE_RE.match(text):
        raise argparse.ArgumentTypeError("1-64 characters of A-Z a-z 0-9 _ . : -")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="voice-client",
        description="Headset client: a standard WebRTC (aiortc) peer for the voice server.",
    )
    p.add_argument("--server", required=True, help="server base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--channel", required=True, help="channel name")
    tok = p.add_mutually_exclusive_group(required=True)
    tok.add_argument("--token", help="access token (sent in the join message, never in the URL)")
    tok.add_argument(
        "--token-file", type=Path, help="file holding the token; re-read when it is about to expire"
    )
    p.add_argument("--play", type=Path, metavar="FILE.wav", help="audio file to say (any format)")
    p.add_argument("--loop", action="store_true", help="repeat --play instead of playing it once")
    p.add_argument(
        "--record", type=Path, metavar="OUT.wav", help="write what is heard (48 kHz mono 16-bit)"
    )
    p.add_argument("--duration", type=_duration, metavar="S", help="leave after S seconds")
    p.add_argument("--device-id", type=_device_id, default=None, help="this device's id")
    p.add_argument(
        "--opus-bitrate",
        type=int,
        default=24_000,
        help="Opus bitrate for the microphone, mono (0: aiortc's own 96 kbps stereo)",
    )
    p.add_argument(
        "--loopback",
        choices=("auto", "yes", "no"),
        default="auto",
        help="gather ICE candidates on 127.0.0.1 (auto: when the server host is loopback)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log aiortc/aioice to stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="voice-client: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        url = websocket_url(args.server)
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    pcm = b""
    if args.play is not None:
        try:
            pcm = read_pcm48(args.play)
        except WavError as exc:
            return _fail(str(exc), EXIT_USAGE)
    if args.record is not None and not args.record.parent.is_dir():
        return _fail(f"--record: no such directory: {args.record.parent}", EXIT_USAGE)
    if args.opus_bitrate != 0 and not 6_000 <= args.opus_bitrate <= 510_000:
        return _fail("--opus-bitrate must be 0 or within 6000..510000", EXIT_USAGE)
    opts = Options(
        url=url,
        channel=args.channel,
        device_id=args.device_id or _default_device_id(),
        token=args.token,
        token_file=args.token_file,
        pcm=pcm,
        loop=args.loop,
        record=args.record,
        duration=args.duration,
        opus_bitrate=args.opus_bitrate or None,
        loopback={"auto": None, "yes": True, "no": False}[args.loopback],
    )
    try:
        return asyncio.run(run(opts))
    except ClientError as exc:
        return _fail(str(exc), exc.code)
    except WavError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130


def _fail(message: str, code: int) -> int:
    print(f"voice-client: error: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
