"""`bench network`'s pure parts: the nftables table forcing a path and dropping a share of the
access leg's packets, and the summary against the issue's targets; bad flags exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from voice_server.bench.network import (
    BURSTY_LOSS,
    NetworkOptions,
    concealment,
    conditions,
    format_summary,
    full_matrix,
    headset_quality,
    rules,
    summarize,
)
from voice_server.cli import main


def test_udp_drops_tcp_and_the_relay_at_the_media_port_and_no_loss_rule_at_zero() -> None:
    table = rules("udp", 0.0, 40000)
    assert "tcp dport 40000 drop;" in table
    assert "ip saddr 127.0.0.3 udp dport 40000 drop;" in table
    assert "numgen" not in table and "hook input" in table


def test_tcp_drops_all_udp_to_the_media_port_and_loses_its_tcp_both_ways() -> None:
    table = rules("tcp", 0.02, 40000)
    assert "udp dport 40000 drop;" in table
    assert "tcp dport 40000 numgen random mod 1000 < 20 counter drop;" in table
    assert "tcp sport 40000 numgen random mod 1000 < 20 counter drop;" in table


def test_turn_lets_only_the_relay_reach_the_media_port_and_loses_on_443() -> None:
    table = rules("turn-tls", 0.02, 40000)
    assert "ip saddr != 127.0.0.3 udp dport 40000 drop;" in table
    assert "tcp dport 40000 drop;" in table
    assert "tcp dport 443 numgen random mod 1000 < 20 counter drop;" in table
    assert "tcp sport 443 numgen random mod 1000 < 20 counter drop;" in table


def test_uplink_loss_drops_only_packets_to_the_media_port() -> None:
    table = rules("udp", 0.1, 40000, "up")
    assert "udp dport 40000 numgen random mod 1000 < 100 counter drop;" in table
    assert "sport 40000" not in table
    down = rules("udp", 0.1, 40000, "down")
    assert "udp sport 40000 numgen random mod 1000 < 100 counter drop;" in down
    assert "dport 40000 numgen" not in down


def test_bursty_loss_is_a_two_state_gilbert_chain_in_a_conntrack_mark() -> None:
    table = rules("udp", BURSTY_LOSS, 40000, "up", "bursty")
    assert "udp dport 40000 ct mark 1 numgen random mod 1000 < 225 ct mark set 0 accept;" in table
    assert "udp dport 40000 ct mark 1 counter drop;" in table
    assert "udp dport 40000 ct mark 0 numgen random mod 1000 < 25 ct mark set 1 counter drop;" in (
        table
    )
    assert abs(BURSTY_LOSS - 0.10) < 1e-9


def test_conditions_give_one_zero_row_and_bursty_once_at_ten_percent() -> None:
    opts = NetworkOptions(losses=(0.0, 0.1), directions=("up", "down"),
                          patterns=("random", "bursty"))  # fmt: skip
    assert conditions(opts) == [
        ("random", 0.0, "up"),
        ("random", 0.1, "up"),
        ("random", 0.1, "down"),
        ("bursty", BURSTY_LOSS, "up"),
        ("bursty", BURSTY_LOSS, "down"),
    ]
    full = full_matrix(NetworkOptions())
    assert full.reds == (True, False) and len(conditions(full)) == 1 + 3 * 2 + 2


def test_concealment_leaves_out_silent_concealment_and_keeps_the_raw_figure() -> None:
    before = {"concealed": 100, "silent": 50, "samples": 1000, "fec": 0, "fecDiscarded": 0}
    after = {"concealed": 400, "silent": 250, "samples": 11000, "fec": 30, "fecDiscarded": 5}
    q = concealment(before, after)
    assert (q["concealed_ratio"], q["concealed_ratio_raw"]) == (0.01, 0.03)
    assert (q["fec_packets_received"], q["fec_packets_discarded"]) == (30, 5)
    assert q["stoi"] is None and q["pesq_wb"] is None and q["utterances"] is None
    assert concealment(before, before)["concealed_ratio"] is None


def test_headset_quality_is_the_share_of_played_frames_its_buffer_filled() -> None:
    before = {"event": "receive", "t": 3.0, "reorder_ms": 60, "packets": 10, "frames": 10,
              "filled": 0, "reordered": 0, "late": 0}  # fmt: skip
    after = {"event": "receive", "t": 19.5, "reorder_ms": 60, "packets": 410, "frames": 400,
             "filled": 8, "fec": 3, "reordered": 120, "late": 2}  # fmt: skip
    q = headset_quality(before, after)
    assert q["concealed_ratio"] == q["concealed_ratio_raw"] == round(8 / 398, 4)
    jb = q["jitter_buffer"]
    assert jb["reorder_ms"] == 60 and jb["filled"] == 8 and jb["reordered"] == 120
    assert jb["late"] == 2 and jb["fec"] == 3 and jb["dropped"] == 0
    assert q["stoi"] is None and q["fec_packets_received"] is None
    assert headset_quality(None, after)["concealed_ratio"] is None
    assert headset_quality(before, before)["concealed_ratio"] is None


def test_summary_compares_red_on_rows_only() -> None:
    rows = [
        {"path": "udp", "loss": 0.1, "p95_ms": 90.0, "red": True, "receiver": "browser"},
        {"path": "udp", "loss": 0.1, "p95_ms": 500.0, "red": False, "receiver": "browser"},
        {"path": "tcp", "loss": 0.1, "p95_ms": 100.0, "red": True, "receiver": "browser"},
        {"path": "tcp", "loss": 0.1, "p95_ms": 20.0, "red": True, "receiver": "headset"},
    ]
    assert summarize(rows)["tcp_over_udp_p95_ms_at_10pct"] == 10.0


def test_summary_compares_each_path_with_udp_at_the_same_loss() -> None:
    browser = [
        {"path": "udp", "loss": 0.0, "p95_ms": 90.0},
        {"path": "tcp", "loss": 0.0, "p95_ms": 110.0},
        {"path": "turn-tls", "loss": 0.0, "p95_ms": 130.0},
        {"path": "udp", "loss": 0.02, "p95_ms": 100.0},
        {"path": "tcp", "loss": 0.02, "p95_ms": 200.0},
        {"path": "turn-tls", "loss": 0.02, "p95_ms": None},
    ]
    headset = [{"path": "udp", "loss": 0.0, "p95_ms": 10.0, "receiver": "headset"}]
    rows = [{**r, "receiver": "browser"} for r in browser] + headset
    assert summarize(rows) == {
        "tcp_over_udp_p95_ms_at_0pct": 20.0,
        "tcp_over_udp_p95_target_met_at_0pct": True,
        "turn-tls_over_udp_p95_ms_at_0pct": 40.0,
        "turn-tls_over_udp_p95_target_met_at_0pct": False,
        "tcp_over_udp_p95_ms_at_2pct": 100.0,
        "tcp_over_udp_p95_target_met_at_2pct": False,
    }


def test_summary_checks_the_loss_targets_on_red_uplink_rows_at_the_browser() -> None:
    def row(loss: float, red: bool, concealed: float, stoi: float | None, **kw: str) -> dict:
        return {"path": "udp", "loss": loss, "red": red, "receiver": "browser", "pattern":
                "random", "direction": "up", "quality": {"concealed_ratio": concealed,
                "stoi": stoi}, **kw}  # fmt: skip

    rows = [
        row(0.0, True, 0.0, 0.98),
        row(0.1, True, 0.004, 0.95),
        row(0.1, False, 0.03, 0.80),  # RED off: reported, not targeted
        row(0.1, True, 0.09, 0.50, direction="down"),  # downlink: reported, not targeted
        row(0.1, True, 0.09, 0.50, pattern="bursty"),
    ]
    assert summarize(rows) == {
        "red_concealed_ratio_at_10pct_up": 0.004,
        "red_concealed_target_met": True,
        "red_stoi_drop_at_10pct_up": 0.03,
        "red_stoi_target_met": True,
    }
    rows[1] = row(0.1, True, 0.025, 0.90)
    got = summarize(rows)
    assert (got["red_concealed_target_met"], got["red_stoi_target_met"]) == (False, False)
    rows[0] = row(0.0, True, 0.0, None)  # no speech score: no STOI keys
    assert "red_stoi_target_met" not in summarize(rows)


@pytest.mark.parametrize(
    "args",
    [
        ["--paths", "udp,quic"],
        ["--loss", "x"],
        ["--loss", "80"],
        ["--period", "1"],
        ["--red", "maybe"],
        ["--direction", "sideways"],
        ["--pattern", "gilbert"],
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "network", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("voice-server bench network:") and "\n" not in err


def test_network_change_keeps_its_keys_and_adds_the_handover() -> None:
    from voice_server.bench.netchange import asked_ms, longest_gap_ms, switched_ms

    events = [{"kind": "media", "wall": 150}, {"kind": "ice_restart", "wall": 90, "why": "x"},
              {"kind": "ice_restart", "wall": 520, "why": "stall"}]  # fmt: skip
    assert asked_ms(events, 100) == 420 and asked_ms(events[:2], 100) is None
    assert longest_gap_ms([[0, 0], [100, 5], [200, 5], [1000, 9], [1040, 12]], 150) == 900
    ice = [[0, "connected", "127.0.0.2", ""], [900, "connected", "127.0.0.6", ""]]
    assert switched_ms(ice, "127.0.0.2", 100) == 800
    assert switched_ms(ice[:1], "127.0.0.2", 0) is None
    result = {
        "rows": [],
        "summary": {},
        "load": {"before": [1.0, 1.0, 1.0], "after": [2.0, 2.0, 2.0]},
        "cpus": 2,
        "network_change": {
            "moves": 2, "gaps_ms": [2200.0, 2300.0], "gap_ms": 2300.0, "gap_p50_ms": 2200.0,
            "resumed": 2,
            "handover": {"handovers": 2, "gaps_ms": [900.0, 950.0], "gap_ms": 950.0,
                         "gap_p50_ms": 900.0, "resumed": 2, "switched_ms": [640, 700],
                         "asked_ms": [420, 480], "listener_asked_ms": [430, None]},
        },
    }  # fmt: skip
    from voice_server.bench.network import _gaps

    ten = _gaps([float(g) for g in range(100, 1100, 100)])
    assert (ten["gap_p50_ms"], ten["gap_p95_ms"], ten["gap_ms"]) == (500.0, 1000.0, 1000.0)
    assert _gaps([700.0, float("inf")])["gap_ms"] is None
    from voice_server.bench.network import change_targets

    targets = change_targets({**result["network_change"], "gap_p95_ms": 2300.0,
                              "handover": {**result["network_change"]["handover"],
                                           "gap_p95_ms": 950.0}})  # fmt: skip
    assert targets == {"move_gap_p95_ms": 2300.0, "move_target_met": False,
                       "handover_gap_p95_ms": 950.0, "handover_target_met": True}  # fmt: skip
    unresumed = {"gaps_ms": [600.0, None], "gap_p95_ms": 600.0, "resumed": 1}
    assert change_targets({"moves": 0, "gaps_ms": [], "handover": unresumed}) == {
        "handover_gap_p95_ms": 600.0, "handover_target_met": False}  # fmt: skip
    assert change_targets(None) == {}
    text = format_summary(result)
    assert "address move): gaps [2200.0, 2300.0] ms, p50 2200.0, p95 None, worst 2300.0" in text
    assert "second network up): gaps [900.0, 950.0] ms, p50 900.0, p95 None, worst 950.0" in text
    assert "restart asked at [420, 480] ms (talker), [430, None] ms (listener)" in text


def test_pages_that_do_not_connect_are_reported_with_where_they_stand(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    from voice_server.bench import network

    class Page:  # what PAGE_STATE gives for an app that never started, and for a joined page
        def __init__(self, state: dict[str, Any]) -> None:
            self.state = state

        def evaluate(self, script: str) -> dict[str, Any]:
            assert script == network.netchange.PAGE_STATE
            return dict(self.state)

    def timed_out(cond: Any, timeout: float, what: str) -> None:
        raise RuntimeError(f"timed out waiting for {what}")

    monkeypatch.setattr(network, "wait_until", timed_out)
    (tmp_path / "server.log").write_text("started\ntransport failed reason=x\n")
    log = io.StringIO()
    pages = {
        "listener": Page({"state": "joined", "media": "connecting", "pc": "ice checking"}),
        "talker": Page({"state": None, "media": None, "page": "complete / Not connected"}),
    }
    with pytest.raises(RuntimeError, match="both browsers"):
        network._both_connected(pages, "http://127.0.0.1:9", tmp_path, log)
    text = log.getvalue()
    assert "listener stuck: {'state': 'joined', 'media': 'connecting', 'pc': 'ice checking'" in text
    assert "talker stuck: {'state': None, 'media': None, 'page': 'complete / Not connected'" in text
    assert "'problems': []" in text  # the page's failed requests and errors (none recorded here)
    assert "server log tail:\n  started\n  transport failed reason=x" in text
