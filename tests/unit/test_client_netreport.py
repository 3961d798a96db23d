"""The headset client's ``stats`` report from aiortc's counters (pure)."""

from __future__ import annotations

import json

from voice_client.netreport import Counters, report
from voice_server.signaling import messages as m


def test_path_rtt_jitter_and_loss_since_the_previous_report() -> None:
    first = Counters(relay=True, received=90, lost=10, jitter_s=0.004, rtt_s=0.0312)
    assert report(first, None) == {
        "path": "turn-tls",
        "rtt_ms": 31.2,
        "jitter_ms": 4.0,
        "loss": 0.1,
    }
    second = Counters(relay=True, received=340, lost=10, jitter_s=0.002, rtt_s=None)
    assert report(second, first) == {"path": "turn-tls", "jitter_ms": 2.0, "loss": 0.0}


def test_a_host_pair_is_udp_and_nothing_received_means_no_loss_figure() -> None:
    now = Counters(relay=False, received=0, lost=0, jitter_s=None, rtt_s=None)
    assert report(now, None) == {"path": "udp"}


def test_concealed_ratio_is_the_share_of_frames_played_since_then_that_were_filled() -> None:
    first = Counters(False, 100, 0, None, None, frames=100, filled=0)
    second = Counters(False, 290, 10, None, None, frames=290, filled=10)
    assert report(second, first)["concealed_ratio"] == 0.05  # 10 of 200 played
    assert "concealed_ratio" not in report(first, first)  # nothing played since


def test_the_server_accepts_what_it_sends() -> None:
    now = Counters(relay=False, received=100, lost=3, jitter_s=120.0, rtt_s=0.05, frames=97,
                   filled=3)  # fmt: skip
    msg = m.parse_client_message(json.dumps({"v": 1, "type": "stats", **report(now, None)}))
    assert msg.type == "stats" and msg.path == "udp" and msg.concealed_ratio == 0.03
