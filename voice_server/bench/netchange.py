"""A network change in the namespace, and the audio gap it costs at a listening browser.

:func:`move_address` moves the phones' address on the namespace's veth (``127.0.0.2`` ↔
``127.0.0.5``, as a phone moving from Wi-Fi to LTE gets a new address) and cuts the old one off
the media port with nftables (``127.0.0.0/8`` stays local on ``lo``, so the kernel would still
deliver from it). :data:`RX_TIMELINE` starts recording a page's received packet count every
40 ms; :func:`longest_gap_ms` reads the longest time without a received packet around a move.
Used by ``bench network`` (``network_change.gap_ms``) and ``tests/e2e/test_web_network_change``.
"""

from __future__ import annotations

import itertools
import subprocess

from voice_server.bench.netns import BROWSER_ADDRESS
from voice_server.bench.turnrelay import nft

__all__ = ["NEW_ADDRESS", "RX_TIMELINE", "longest_gap_ms", "move_address", "restore"]

NEW_ADDRESS = "127.0.0.5"
VETH = "vsveth0"
TABLE = "voice_network_change"

RX_TIMELINE = """() => {
  window.__rx = [];
  setInterval(async () => {
    const pc = window.voiceDiag.call.pc;
    if (!pc) return;
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") n += s.packetsReceived || 0;
    });
    window.__rx.push([Date.now(), n]);
  }, 40);
}"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def move_address(media_port: int, *, old: str = BROWSER_ADDRESS, new: str = NEW_ADDRESS) -> None:
    """The veth's address ``old`` becomes ``new``; ``old`` can no longer reach the media port."""
    _ip("addr", "add", f"{new}/32", "dev", VETH)
    _ip("addr", "del", f"{old}/32", "dev", VETH)
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    nft(
        f"table inet {TABLE} {{\n"
        f"  chain inbound {{ type filter hook input priority 0; policy accept;\n"
        f"    ip saddr {old} udp dport {media_port} drop;\n  }}\n"
        f"  chain outbound {{ type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {old} udp sport {media_port} drop;\n  }}\n}}\n"
    )


def restore(*, current: str = NEW_ADDRESS) -> None:
    """Back to the namespace's own address, no rule."""
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    subprocess.run(["ip", "addr", "add", f"{BROWSER_ADDRESS}/32", "dev", VETH], check=False,
                   capture_output=True)  # fmt: skip
    if current != BROWSER_ADDRESS:
        subprocess.run(["ip", "addr", "del", f"{current}/32", "dev", VETH], check=False,
                       capture_output=True)  # fmt: skip


def longest_gap_ms(timeline: list[list[float]], since_ms: float) -> float:
    """The longest time between two increases of the received count from the last increase
    before ``since_ms`` on (inf when nothing came after it)."""
    rises = [t for (_, m), (t, n) in itertools.pairwise(timeline) if n > m]
    points = [t for t in rises if t < since_ms][-1:] + [t for t in rises if t >= since_ms]
    return max((b - a for a, b in itertools.pairwise(points)), default=float("inf"))
