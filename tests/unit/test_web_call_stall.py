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
import { hasBackupNetwork, stallLimitMs } from %s;
const stats = (rows) => new Map(rows.map((r) => [r.id, r]));
const base = [
  { id: "T", type: "transport", selectedCandidatePairId: "P1" },
  { id: "P1", type: "candidate-pair", state: "succeeded", localCandidateId: "L1" },
  { id: "L1", type: "local-candidate", address: "127.0.0.2", candidateType: "host" },
  { id: "L2", type: "local-candidate", address: "127.0.0.6", candidateType: "host" },
  { id: "L3", type: "local-candidate", address: "127.0.0.3", candidateType: "relay" },
];
const pair = (id, local, state) => ({ id, type: "candidate-pair", state, localCandidateId: local });
console.log(JSON.stringify({
  limits: [[10, false], [0, false], [10, true], [0, true]].map(
    ([sent, b]) => stallLimitMs({ sent: 0 }, sent, b)),
  none: hasBackupNetwork(stats(base)),
  other: hasBackupNetwork(stats([...base, pair("P2", "L2", "succeeded")])),
  unchecked: hasBackupNetwork(stats([...base, pair("P2", "L2", "in-progress")])),
  relay: hasBackupNetwork(stats([...base, pair("P2", "L3", "succeeded")])),
  same: hasBackupNetwork(stats([...base, pair("P2", "L1", "succeeded")])),
  unselected: hasBackupNetwork(stats(base.slice(1))),
}));
"""


@pytest.mark.skipif(NODE is None, reason="needs Node.js")
def test_a_second_checked_network_shortens_the_stall_rule() -> None:
    assert NODE is not None
    done = subprocess.run([NODE, "--input-type=module", "-e", SCRIPT % json.dumps(CALL.as_uri())],
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    got = json.loads(done.stdout)
    assert got["limits"] == [600, 800, 400, 400]
    assert got["other"] is True
    assert not any(got[k] for k in ("none", "unchecked", "relay", "same", "unselected"))
