"""``voice-client``: the headset client. A standard aiortc WebRTC peer that joins a channel,
talks from a microphone (``--input``) or a WAV file (``--play``), plays what it hears on a
speaker (``--output``) or records it (``--record``), and prints events as JSON lines.

    voice-client --server https://voice.example:8000 --channel ops --token-file tok.txt \\
        --input --output                       # a headset, hands-free
    voice-client ... --input --output --mode ptt --ptt-device /dev/input/event5
    voice-client ... --play hello.wav --record heard.wav --duration 20

Hands-free (default) sends only while you speak (attack 30 ms, hangover 500 ms, the phone
client's rule); push-to-talk sends while the evdev button is held or, on a terminal, between two
presses of the key. When the connection drops it joins again by itself (resuming the session
within the server's grace period).

stdout: one JSON object per event (``joined``, ``participant_joined``, ``participant_left``,
``talk_started``, ``talk_stopped``, ``slot_busy``, ``refreshed``, ``media``, ``sending``,
``ptt``, ``disconnected``, ``reconnecting``, ``audio``, ``onset``), each with ``t``, seconds
since start. stderr: one line per error or warning. Exit codes: 0 done, 1 runtime error
(unreachable server, no audio device, lost connection with --no-reconnect, media never
connected), 2 bad arguments or input file, 3 the server refused the join or ended the session
with an error code (printed).
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

from voice_client.devices import AudioDeviceError, list_devices
from voice_client.reorder import DEFAULT_DEPTH_MS, MAX_DEPTH_MS
from voice_client.runner import ClientError, Options, run
from voice_client.signaling import websocket_url
from voice_client.vad import GateMode, VadRules
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
    p.add_argument("--server", help="server base URL, e.g. https://voice.example:8000")
    p.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="URL",
        help="another node of the same cluster (repeat): a drained node's migrate may send "
        "the client there; a migrate to any other address is not followed",
    )
    p.add_argument("--channel", help="channel name")
    p.add_argument(
        "--monitor",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="also hear this channel (repeatable; asked for once media is up)",
    )
    p.add_argument(
        "--monitor-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long after media is up before asking for --monitor / --console (0-60)",
    )
    p.add_argument(
        "--console",
        action="store_true",
        help="a dispatcher console: --monitor channels one supervises (monitor, slots map)",
    )
    p.add_argument(
        "--talk-target",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="with --console: talk into this channel (repeat for an all-call)",
    )
    p.add_argument(
        "--talk-to-user", metavar="USER", help="with --console: talk to this user (direct talk)"
    )
    p.add_argument(
        "--list-devices", action="store_true", help="list audio devices (PortAudio) and exit"
    )
    tok = p.add_mutually_exclusive_group()
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
    dev = p.add_argument_group("audio devices (instead of --play / --record)")
    dev.add_argument(
        "--input",
        nargs="?",
        const="default",
        metavar="DEVICE",
        help="talk from a microphone: 'default', an index or part of a name (--list-devices)",
    )
    dev.add_argument(
        "--output",
        nargs="?",
        const="default",
        metavar="DEVICE",
        help="play what is heard on a speaker or headset (same choices as --input)",
    )
    dev.add_argument(
        "--playout-ms",
        type=int,
        default=20,
        help="output buffer that absorbs network jitter (default 20; latency never exceeds "
        "it by more than 100 ms: older audio is dropped)",
    )
    talk = p.add_argument_group("talking")
    talk.add_argument(
        "--mode",
        choices=[m.value for m in GateMode],
        default=GateMode.HANDSFREE.value,
        help="handsfree: send while you speak (default); ptt: push-to-talk; open: always send",
    )
    talk.add_argument("--vad-threshold", type=float, default=-45.0, help="dBFS (default -45)")
    talk.add_argument("--attack-ms", type=int, default=30, help="voice needed to start (30)")
    talk.add_argument("--hangover-ms", type=int, default=500, help="kept open after voice (500)")
    talk.add_argument(
        "--ptt-key",
        default=" ",
        help="terminal key that toggles push-to-talk (default: space; terminals report no "
        "key release, so a press starts and the next press stops)",
    )
    talk.add_argument(
        "--replay-key",
        default="r",
        help="terminal key that plays what was said in the channel while you were away, "
        "oldest first (default: r; empty: none)",
    )
    talk.add_argument(
        "--ptt-device",
        metavar="/dev/input/eventN",
        help="hold-to-talk with a headset or keyboard button through evdev",
    )
    emergency = p.add_argument_group("emergency")
    emergency.add_argument(
        "--emergency-key",
        metavar="KEY",
        help="terminal key that raises an emergency: press it twice within 3 s, then a 5 s "
        "countdown that one more press cancels; while it is open the microphone is sent "
        "whatever the gate says",
    )
    emergency.add_argument(
        "--emergency-device",
        metavar="/dev/input/eventN",
        help="raise an emergency by holding a headset or keyboard button 2 s (evdev), then "
        "the countdown",
    )
    p.add_argument(
        "--no-reconnect",
        action="store_true",
        help="end when the connection drops instead of joining again",
    )
    p.add_argument(
        "--report-onsets",
        action="store_true",
        help="print an 'onset' event with the wall-clock time of each tone onset heard "
        "(latency benchmark)",
    )
    p.add_argument(
        "--jitter-buffer",
        choices=("playout", "aiortc"),
        default="playout",
        help="playout: the client's own receive buffer (packets put back in order within "
        "--reorder-ms, lost frames concealed), jitter absorbed by the output buffer "
        "(default); aiortc: aiortc's own ~80 ms buffer",
    )
    p.add_argument(
        "--reorder-ms",
        type=int,
        default=DEFAULT_DEPTH_MS,
        help=f"with --jitter-buffer playout: how long a packet that arrived after a hole may "
        f"wait for it, ms (0-{MAX_DEPTH_MS}, default {DEFAULT_DEPTH_MS}); only a hole makes "
        "packets wait, then the missing frame is concealed",
    )
    p.add_argument(
        "--ca-file",
        type=Path,
        metavar="CA.pem",
        help="also trust this CA (PEM) for the server's wss:// and its TURN relay's turns:",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log aiortc/aioice to stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        return _list_devices()
    missing = [f for f in ("server", "channel") if getattr(args, f) is None]
    if args.token is None and args.token_file is None:
        missing.append("token or token_file")
    if missing:
        parser.error("the following arguments are required: --" + ", --".join(missing))
    if args.input is not None and args.play is not None:
        parser.error("--input and --play are alternatives: give one")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.ERROR,
        format="voice-client: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        url = websocket_url(args.server)
        nodes = tuple(websocket_url(node) for node in args.node)
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
    if not 0.0 <= args.monitor_delay <= 60.0:
        return _fail("--monitor-delay must be within 0..60 seconds", EXIT_USAGE)
    if args.opus_bitrate != 0 and not 6_000 <= args.opus_bitrate <= 510_000:
        return _fail("--opus-bitrate must be 0 or within 6000..510000", EXIT_USAGE)
    opts = Options(
        url=url,
        nodes=nodes,
        channel=args.channel,
        monitor=tuple(args.monitor),
        monitor_delay=args.monitor_delay,
        console=args.console,
        talk_target=tuple(args.talk_target),
        talk_user=args.talk_to_user,
        device_id=args.device_id or _default_device_id(),
        token=args.token,
        token_file=args.token_file,
        pcm=pcm,
        loop=args.loop,
        record=args.record,
        duration=args.duration,
        opus_bitrate=args.opus_bitrate or None,
        loopback={"auto": None, "yes": True, "no": False}[args.loopback],
        mode=GateMode(args.mode),
        input_device=args.input,
        output_device=args.output,
        playout_ms=args.playout_ms,
        ptt_key=args.ptt_key or None,
        ptt_device=args.ptt_device,
        emergency_key=args.emergency_key or None,
        emergency_device=args.emergency_device,
        replay_key=args.replay_key or None,
        reconnect=not args.no_reconnect,
        report_onsets=args.report_onsets,
        low_latency=args.jitter_buffer == "playout",
        reorder_ms=args.reorder_ms,
    )
    try:
        opts.vad = VadRules(
            threshold_db=args.vad_threshold,
            attack_ms=args.attack_ms,
            hangover_ms=args.hangover_ms,
        )
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    if args.ca_file is not None and not args.ca_file.is_file():
        return _fail(f"--ca-file: no such file: {args.ca_file}", EXIT_USAGE)
    opts.ca_file = args.ca_file
    for flag, key in (("--emergency-key", args.emergency_key), ("--ptt-key", args.ptt_key)):
        if key is not None and len(key) > 1:
            return _fail(f"{flag} must be one key (one character)", EXIT_USAGE)
    if args.emergency_key and args.emergency_key == args.ptt_key and args.mode == "ptt":
        return _fail("--emergency-key and --ptt-key must differ", EXIT_USAGE)
    if not 0 <= args.reorder_ms <= MAX_DEPTH_MS:
        return _fail(f"--reorder-ms must be within 0..{MAX_DEPTH_MS}", EXIT_USAGE)
    if not 0 <= args.playout_ms <= 500:
        return _fail("--playout-ms must be within 0..500", EXIT_USAGE)
    try:
        return asyncio.run(run(opts))
    except ClientError as exc:
        return _fail(str(exc), exc.code)
    except WavError as exc:
        return _fail(str(exc), 1)
    except KeyboardInterrupt:
        return 130


def _list_devices() -> int:
    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        return _fail(str(exc), 1)
    if not devices:
        return _fail("no audio devices found (no sound card, and no PulseAudio/PipeWire?)", 1)
    print("  (< default input, > default output)")
    for d in devices:
        print(d.line())
    return 0


def _fail(message: str, code: int) -> int:
    print(f"voice-client: error: {message}", file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
