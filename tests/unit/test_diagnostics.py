"""Client network diagnostics (``stats``): validated at the edge, rate-limited, bounded."""

from __future__ import annotations

import json

import pytest

from voice_server.signaling.diagnostics import PATHS, Diagnostics, Report
from voice_server.signaling.errors import ProtocolError
from voice_server.signaling.messages import ClientStats, parse_client_message


def stats(**fields: object) -> str:
    return json.dumps({"v": 1, "type": "stats", **fields})


def test_a_valid_report_parses() -> None:
    msg = parse_client_message(
        stats(path="turn-tls", rtt_ms=80.5, loss=0.02, jitter_ms=4, concealed_ratio=0)
    )
    assert isinstance(msg, ClientStats) and msg.path == "turn-tls" and msg.rtt_ms == 80.5
    assert parse_client_message(stats(path="udp")) == ClientStats(type="stats", path="udp")


@pytest.mark.parametrize(
    "fields",
    [
        {"path": "carrier-pigeon"},
        {"path": "udp", "loss": 1.5},
        {"path": "udp", "loss": -0.1},
        {"path": "udp", "rtt_ms": 1e12},
        {"path": "udp", "jitter_ms": "NaN"},
        {"path": "udp", "concealed_ratio": True, "extra": "x" * 100},
        {"path": "udp", "session": "someone-else"},
        {},
    ],
)
def test_forged_or_out_of_range_reports_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ProtocolError):
        parse_client_message(stats(**fields))


def test_one_report_per_interval_is_kept_and_labels_are_bounded() -> None:
    diag = Diagnostics(min_interval=2.0)
    assert diag.record("s1", Report("tcp", 10, 0, 1, 0, at=0.0))
    assert not diag.record("s1", Report("udp", 10, 0, 1, 0, at=1.0))  # too soon
    assert diag.record("s2", Report("udp", None, None, None, None, at=1.0))
    assert diag.record("s1", Report("turn-tls", 10, 0, 1, 0, at=2.5))
    assert diag.path_counts() == {"udp": 1, "tcp": 0, "turn-tls": 1}
    assert tuple(diag.path_counts()) == PATHS
    assert (diag.accepted, diag.limited) == (3, 1)
    diag.forget("s1")
    diag.forget("nobody")
    assert diag.path_counts()["turn-tls"] == 0 and len(diag.latest) == 1
    with pytest.raises(ValueError):
        diag.record("s3", Report("bogus", None, None, None, None, at=9.0))
