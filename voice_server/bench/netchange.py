"""A network change in the namespace, and the audio gap it costs at a listening browser.

:func:`move_address` moves the phones' address on the namespace's veth (``127.0.0.2`` ↔
``127.0.0.5``, as a phone moving from Wi-Fi to LTE gets a new address) and cuts the old one off
the media port with nftables (``127.0.0.0/8`` stays local on ``lo``, so the kernel would still
deliver from it). :data:`RX_TIMELINE` starts recording a page's received packet count every
40 ms; :func:`longest_gap_ms` reads the longest time without a received packet around a move.
Used by ``bench network`` (``network_change.gap_ms``) and ``tests/e2e/test_web_network_change``.

:func:`add_second_network` and :func:`cut_address` are the realistic Wi-Fi → LTE handover: a phone
keeps LTE attached while on Wi-Fi, so its second address is up (and already a host candidate in
Chromium) before the first goes away. A second veth pair (``vsveth2``/``vsveth3``, both ends in
the namespace) carries :data:`SECOND_ADDRESS` from before the browsers start; the handover cuts
the address the call's selected pair uses (removed from its veth, and dropped with nftables as
:func:`move_address` does). Used by ``bench network --change handover`` and
``tests/e2e/test_web_network_handover``.
"""

from __future__ import annotations

import itertools
import subprocess
from typing import Any

from voice_server.bench.netns import BROWSER_ADDRESS, add_veth
from voice_server.bench.turnrelay import nft

__all__ = [
    "DIAG_EVENTS",
    "ICE_TIMELINE",
    "LOCAL_ADDRESSES",
    "NEW_ADDRESS",
    "PAGE_STATE",
    "RX_TIMELINE",
    "SECOND_ADDRESS",
    "SELECTED_ADDRESS",
    "add_second_network",
    "asked_ms",
    "cut_address",
    "longest_gap_ms",
    "move_address",
    "remove_second_network",
    "restore",
    "switched_ms",
]

NEW_ADDRESS = "127.0.0.5"
#: the handover's second network (the phone's LTE, up from the start)
SECOND_ADDRESS = "127.0.0.6"
VETH = "vsveth0"
SECOND_VETH = ("vsveth2", "vsveth3")
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


#: the address of the local candidate of a page's selected pair (null while none)
SELECTED_ADDRESS = """async () => {
  const pc = window.voiceDiag.call.pc;
  if (!pc) return null;
  const report = await pc.getStats();
  let address = null;
  report.forEach((s) => {
    if (s.type !== "transport" || !s.selectedCandidatePairId) return;
    const pair = report.get(s.selectedCandidatePairId);
    const local = pair && report.get(pair.localCandidateId);
    if (local) address = local.address;
  });
  return address;
}"""

#: the addresses of a page's local candidates (its gathered host candidates, sorted)
LOCAL_ADDRESSES = """async () => {
  const out = new Set();
  (await window.voiceDiag.call.pc.getStats()).forEach((s) => {
    if (s.type === "local-candidate" && s.address) out.add(s.address);
  });
  return [...out].sort();
}"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def add_second_network(address: str = SECOND_ADDRESS) -> None:
    """A second interface up with ``address`` (the phone's LTE); before the browsers start, so
    Chromium gathers a host candidate on it from the first offer on."""
    remove_second_network()
    add_veth(SECOND_VETH, address)  # settled: no IPv6 link-local address coming later


def remove_second_network() -> None:
    subprocess.run(["ip", "link", "del", SECOND_VETH[0]], capture_output=True, check=False)


def _drop(media_port: int, old: str) -> None:
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    nft(
        f"table inet {TABLE} {{\n"
        f"  chain inbound {{ type filter hook input priority 0; policy accept;\n"
        f"    ip saddr {old} udp dport {media_port} drop;\n  }}\n"
        f"  chain outbound {{ type filter hook output priority 0; policy accept;\n"
        f"    ip daddr {old} udp sport {media_port} drop;\n  }}\n}}\n"
    )


def cut_address(media_port: int, old: str) -> None:
    """The handover: ``old`` goes away (removed from whichever veth holds it) and can no longer
    reach the media port; the other network stays as it was."""
    _drop(media_port, old)
    for dev in (VETH, SECOND_VETH[0]):
        subprocess.run(["ip", "addr", "del", f"{old}/32", "dev", dev], capture_output=True,
                       check=False)  # fmt: skip


def move_address(media_port: int, *, old: str = BROWSER_ADDRESS, new: str = NEW_ADDRESS) -> None:
    """The veth's address ``old`` becomes ``new``; ``old`` can no longer reach the media port."""
    _ip("addr", "add", f"{new}/32", "dev", VETH)
    _ip("addr", "del", f"{old}/32", "dev", VETH)
    _drop(media_port, old)


def restore(*, current: str = NEW_ADDRESS) -> None:
    """Back to the namespace's own address, no rule, no second network."""
    subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, check=False)
    remove_second_network()
    subprocess.run(["ip", "addr", "add", f"{BROWSER_ADDRESS}/32", "dev", VETH], check=False,
                   capture_output=True)  # fmt: skip
    if current != BROWSER_ADDRESS:
        subprocess.run(["ip", "addr", "del", f"{current}/32", "dev", VETH], check=False,
                       capture_output=True)  # fmt: skip


def switched_ms(ice: list[list[Any]], cut: str, since_ms: float) -> float | None:
    """When a page's selected pair first left ``cut`` (ms after ``since_ms``; :data:`ICE_TIMELINE`
    rows), None if it never did."""
    for row in ice:
        if row[0] >= since_ms and row[2] not in (None, cut):
            return float(round(row[0] - since_ms))
    return None


#: the page's diagnostic events (clients/web/js/diag.js: kind, wall clock ms, details)
DIAG_EVENTS = "() => window.voiceDiag ? window.voiceDiag.events : []"


def asked_ms(events: list[dict[str, Any]], since_ms: float) -> float | None:
    """When a page first asked for an ICE restart (its ``ice_restart`` diag event) from
    ``since_ms`` on (ms after it), None if it never did: the stall detection's share of a gap."""
    for event in events:
        if event.get("kind") == "ice_restart" and event.get("wall", 0) >= since_ms:
            return float(round(event["wall"] - since_ms))
    return None


def longest_gap_ms(timeline: list[list[float]], since_ms: float) -> float:
    """The longest time between two increases of the received count from the last increase
    before ``since_ms`` on (inf when nothing came after it)."""
    rises = [t for (_, m), (t, n) in itertools.pairwise(timeline) if n > m]
    points = [t for t in rises if t < since_ms][-1:] + [t for t in rises if t >= since_ms]
    return max((b - a for a, b in itertools.pairwise(points)), default=float("inf"))


#: starts recording a page's ICE state, selected local address and candidate pairs whenever
#: they change (``window.__ice``: [ms, ice state, selected address, "addr:state[:n]" per pair])
ICE_TIMELINE = """() => {
  window.__ice = [];
  let last = "";
  setInterval(async () => {
    const pc = window.voiceDiag.call.pc;
    if (!pc) return;
    const report = await pc.getStats();
    let selected = null;
    const pairs = [];
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const local = pair && report.get(pair.localCandidateId);
        selected = local ? local.address : null;
      }
    });
    report.forEach((s) => {
      if (s.type !== "candidate-pair") return;
      const local = report.get(s.localCandidateId);
      pairs.push(`${local ? local.address : "?"}:${s.state}${s.nominated ? ":n" : ""}`);
    });
    const row = [pc.iceConnectionState, selected, pairs.sort().join(" ")];
    const key = JSON.stringify(row);
    if (key !== last) { last = key; window.__ice.push([Date.now(), ...row]); }
  }, 40);
}"""


#: where a page's join stands (for a bench's "timed out waiting for ..." report): the app's state
#: and media, its peer connection's states, local candidates, candidate pairs and last diag events
PAGE_STATE = """async () => {
  const out = {state: document.body.dataset.state, media: document.body.dataset.media};
  if (!out.state) {  // the app never started: how far did the page get?
    out.page = `${document.readyState} ${location.pathname}${location.search} `
      + `"${document.title}" ${document.body.innerText.slice(0, 120)}`;
    out.loaded = performance.getEntriesByType("resource").map((r) => `${r.name.replace(
      location.origin, "")} ${r.responseStatus ?? ""} ${Math.round(r.duration)}ms`);
    const nav = performance.getEntriesByType("navigation")[0];
    if (nav) out.navigation = `${nav.responseStatus ?? ""} ${Math.round(nav.duration)}ms`;
  }
  const warning = document.getElementById("warning");
  if (warning && !warning.hidden) out.warning = warning.textContent;
  const diag = window.voiceDiag;
  if (!diag) return out;
  out.events = diag.events.slice(-12).map((e) => `${e.kind}${e.why ? ":" + e.why : ""}`
    + `${e.state ? ":" + e.state : ""}${e.address ? ":" + e.address : ""}`);
  const pc = diag.call.pc;
  if (!pc) return out;
  out.pc = `ice ${pc.iceConnectionState}, gathering ${pc.iceGatheringState}, `
    + `connection ${pc.connectionState}, signaling ${pc.signalingState}`;
  const report = await pc.getStats();
  const name = (c) => c ? `${c.candidateType}/${c.protocol}/${c.address}:${c.port}` : "?";
  out.local = [];
  out.pairs = [];
  report.forEach((s) => {
    if (s.type === "local-candidate") out.local.push(name(s));
    if (s.type === "transport") out.dtls = `${s.dtlsState} ice ${s.iceState || ""}`;
    if (s.type !== "candidate-pair") return;
    out.pairs.push(`${name(report.get(s.localCandidateId))} -> `
      + `${name(report.get(s.remoteCandidateId))} ${s.state}${s.nominated ? " nominated" : ""}`
      + ` req ${s.requestsSent || 0} resp ${s.responsesReceived || 0}`);
  });
  return out;
}"""
