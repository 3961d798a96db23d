"""``voice-server bench relay-packet``: the relay datagram's per-packet cost, plain (a BLAKE2s
tag) against sealed (ChaCha20-Poly1305, ``cluster_relay_encrypt``; README "Cluster").

One sender packs (or seals) and one receiver's :class:`RelayGate` checks ``--packets`` distinct
datagrams of a typical voice packet (a 20 ms Opus frame: ``--payload`` bytes of RTP) in one
process and one thread: the pack and the accept are timed apart, each the best of ``--rounds``
rounds (the least disturbed by the rest of the machine). ``ratio`` is sealed ÷ plain for pack +
accept. Figures in ns per packet.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voice_server.argtypes import positive_int

if TYPE_CHECKING:  # imported when it runs: `voice-server` itself does not load cryptography
    from voice_server.media.relay_packet import RelayPacket

__all__ = ["add_parser", "format_summary", "main", "run_relay_packet_bench"]


def _packets(n: int, payload: int) -> list[RelayPacket]:
    from voice_server.media.relay_packet import Kind, RelayPacket

    rtp = bytes([0x90, 111]) + bytes(10) + secrets.token_bytes(payload - 12)
    return [
        RelayPacket(
            sender=1,
            incarnation=7,
            epoch=3,
            channel="ops",
            source="s-" + "a" * 22,  # a session id's length
            payload=rtp,
            slot=1,
            send_ns=i,
            level_ext_id=1,
            kind=Kind.MIRROR,
        )
        for i in range(n)
    ]


def _best_ns(run: Any, rounds: int, n: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        run()
        best = min(best, time.perf_counter_ns() - t0)
    return best / n


def _mode(packets: list[RelayPacket], rounds: int, sealed: bool) -> dict[str, float]:
    from voice_server.media.relay_packet import RelayGate, Sealer, pack

    key, seal = secrets.token_bytes(32), secrets.token_bytes(32)
    sealer = Sealer(seal, 1, 7)
    n = len(packets)

    if sealed:

        def make() -> list[bytes]:
            return [sealer.seal(p) for p in packets]
    else:

        def make() -> list[bytes]:
            return [pack(p, key) for p in packets]

    pack_ns = _best_ns(make, rounds, n)
    accept_ns = float("inf")
    accepted = 0
    for _ in range(rounds):  # a new gate and new datagrams each round: no replay refused
        datagrams = make()
        gate = RelayGate(key, 0, {1: 7}, seal_key=seal if sealed else None)
        accept = gate.accept
        t0 = time.perf_counter_ns()
        for d in datagrams:
            accept(d)
        accept_ns = min(accept_ns, (time.perf_counter_ns() - t0) / n)
        accepted = gate.accepted
    if accepted != n:
        raise RuntimeError(f"the gate accepted {accepted} of {n} datagrams")
    size = len(make()[0])
    return {
        "pack_ns": round(pack_ns, 1),
        "accept_ns": round(accept_ns, 1),
        "total_ns": round(pack_ns + accept_ns, 1),
        "datagram_bytes": size,
    }


def run_relay_packet_bench(
    packets: int = 20000, payload: int = 92, rounds: int = 5
) -> dict[str, Any]:
    items = _packets(packets, payload)
    plain = _mode(items, rounds, sealed=False)
    sealed = _mode(items, rounds, sealed=True)
    return {
        "packets": packets,
        "payload_bytes": payload,
        "rounds": rounds,
        "plain": plain,
        "sealed": sealed,
        "ratio": round(sealed["total_ns"] / plain["total_ns"], 2),
    }


def format_summary(result: dict[str, Any]) -> str:
    lines = [
        f"relay datagram, {result['payload_bytes']}-byte RTP, best of {result['rounds']} rounds "
        f"of {result['packets']} packets (ns per packet):"
    ]
    for mode in ("plain", "sealed"):
        m = result[mode]
        lines.append(
            f"  {mode:6}  pack {m['pack_ns']:7.0f}  accept {m['accept_ns']:7.0f}  "
            f"total {m['total_ns']:7.0f}  ({m['datagram_bytes']} bytes)"
        )
    lines.append(f"  sealed / plain: {result['ratio']:.2f}")
    return "\n".join(lines)


def add_parser(bsub: Any) -> None:
    p = bsub.add_parser(
        "relay-packet",
        help="the relay datagram's cost per packet: plain (tag) against sealed (encrypted)",
    )
    p.add_argument("--packets", type=positive_int, default=20000, help="per round (20000)")
    p.add_argument("--payload", type=positive_int, default=92, help="RTP bytes (92: Opus 20 ms)")
    p.add_argument("--rounds", type=positive_int, default=5, help="best of (5)")
    p.add_argument("--json", type=Path, help="write the figures to this file")


def main(args: Any) -> int:
    import json

    if args.payload < 12:
        print("voice-server bench relay-packet: --payload is at least 12 (an RTP header)")
        return 2
    result = run_relay_packet_bench(args.packets, args.payload, args.rounds)
    print(format_summary(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
