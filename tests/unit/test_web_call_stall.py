"""The phone app's stall rule (clients/web/js/call.js, its pure parts, run in Node): a restart
comes sooner when a second network is already checked, and only a succeeded pair from another
local address (no relay) counts as one."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

CALL = Path(__file__).resolve().parents[2] / "clients" / "web" / "js" / "call.js"
NODE = shutil.which("node")

SCRIPT = """
import { hasBackupNetwork, newWatch, quietMs, stallLimitMs, voiceWentOut, watchSample } from %s;
const stats = (rows) => new Map(rows.map((r) => [r.id, r]));
const base = [
  { id: "T", type: "transport", selectedCandidatePairId: "P1" },
  { id: "P1", type: "candidate-pair", state: "succeeded", localCandidateId: "L1" },
  { id: "L1", type: "local-candidate", address: "127.0.0.2", candidateType: "host" },
  { id: "L2", type: "local-candidate", address: "127.0.0.6", candidateType: "host" },
  { id: "L3", type: "local-candidate", address: "127.0.0.3", candidateType: "relay" },
];
const pair = (id, local, state) => ({ id, type: "candidate-pair", state, localCandidateId: local });
// a watch fed every 100 ms from `t0`: `sent` packets each, the transport's bytes as given
function run(steps, { quiet = () => null, expecting = () => false, backup = false } = {}) {
  const w = newWatch();
  const out = [];
  let sent = 0;
  steps.forEach(([packets, received], i) => {
    sent += packets;
    const now = 1000 + 100 * i;
    const r = watchSample(
      w, { now, sent, received, quietMs: quiet(now), expecting: expecting(now), backup });
    out.push(r.stalled ? "S" : r.voiced ? "v" : ".");
  });
  return out.join("");
}
const talk = (n, rx) => Array.from({ length: n }, (_, i) => [i %% 2 ? 4 : 6, rx(i)]);
console.log(JSON.stringify({
  limits: [[true, false], [false, false], [true, true], [false, true]].map(
    ([v, b]) => stallLimitMs(v, b)),
  // packetsSent in uneven steps (6, 4, ...) is voice; DTX silence (one in 400 ms) is not
  voiced: [[6, 1300], [5, 1300], [5, 1200], [4, 1200], [9, 1000]].map(
    ([sent, now]) => voiceWentOut({ samples: [[1000, 0], [1100, 1]] }, sent, now)),
  first: voiceWentOut(newWatch(), 50, 1000),
  // talking, keepalives all along: never a stall; then nothing comes back: asked after the limit
  alive: run(talk(12, (i) => i * 52)),
  dead: run(talk(12, (i) => Math.min(i, 3) * 52)),
  deadBackup: run(talk(12, (i) => Math.min(i, 3) * 52), { backup: true }),
  // the browser's lastPacketReceivedTimestamp (quiet ms) rules when given
  quietGiven: run(talk(8, () => 0), { quiet: (now) => now - 1000, backup: true }),
  // a talk heard after a long silence: counted from when it began, not from the last packet
  expecting: run(Array.from({ length: 10 }, () => [0, 0]), {
    quiet: (now) => now, expecting: (now) => now >= 1300, backup: true }),
  // DTX silence while nobody talks to us: never
  silence: run(Array.from({ length: 20 }, (_, i) => [i %% 4 ? 0 : 1, 0])),
  quiet: [
    quietMs(stats([...base.filter((r) => r.id !== "P1"),
      { ...pair("P1", "L1", "succeeded"), timestamp: 5000, lastPacketReceivedTimestamp: 4700 }])),
    quietMs(stats(base)),
  ],
  none: hasBackupNetwork(stats(base)),
  other: hasBackupNetwork(stats([...base, pair("P2", "L2", "succeeded")])),
  unchecked: hasBackupNetwork(stats([...base, pair("P2", "L2", "waiting")])),
  failed: hasBackupNetwork(stats([...base, pair("P2", "L2", "failed")])),
  relay: hasBackupNetwork(stats([...base, pair("P2", "L3", "succeeded")])),
  same: hasBackupNetwork(stats([...base, pair("P2", "L1", "succeeded")])),
  unselected: hasBackupNetwork(stats(base.slice(1))),
}));
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
def test_the_stall_rule() -> None:
    assert NODE is not None
    done = subprocess.run([NODE, "--input-type=module", "-e", SCRIPT % json.dumps(CALL.as_uri())],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    got = json.loads(done.stdout)
    assert got["limits"] == [400, 600, 400, 400]
    assert got["voiced"] == [True, False, True, False, False]
    assert got["first"] is False  # no earlier sample: nothing to compare
    assert got["alive"] == "." + "v" * 11  # the first sample has no window yet
    # bytes stop after the 4th sample (1300): the 400 ms limit at 1700, and again a limit later
    # (the call rate-limits its asks)
    assert got["dead"] == ".vvvvvvSvvvS"
    assert got["deadBackup"] == ".vvvvvvSvvvS"
    assert got["quietGiven"] == ".vvvvSvv"  # nothing came since 1000; voice went out from 1100
    assert got["expecting"] == ".......S.."  # expecting from 1300: asked at 1700
    assert got["silence"] == "." * 20
    assert got["quiet"] == [300, None]
    assert got["other"] is True and got["unchecked"] is True
    assert not any(got[k] for k in ("none", "failed", "relay", "same", "unselected"))
