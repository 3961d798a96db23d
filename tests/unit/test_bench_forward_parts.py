"""Parts of ``bench forward``: reading /metrics back, /proc/net/udp, the machine's CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from voice_server.bench import prom
from voice_server.bench.procstat import read_machine_busy_seconds
from voice_server.bench.udpstat import read_udp_sockets, total_drops
from voice_server.histogram import LatencyHistogram
from voice_server.metrics import Family, MetricsRegistry


def _render(*families: Family) -> str:
    registry = MetricsRegistry()
    registry.register(lambda: list(families))
    return registry.render()


def test_samples_are_found_by_name_and_labels() -> None:
    fam = Family("voice_media_drops_total", "counter", "drops")
    fam.add(3, reason="send_error").add(7, reason="stale")
    samples = prom.parse(_render(fam, Family("x_total", "counter", "x").add(2.5)))
    assert prom.value(samples, "voice_media_drops_total", reason="stale") == 7
    assert prom.value(samples, "voice_media_drops_total", reason="send_error") == 3
    assert prom.value(samples, "x_total") == 2.5
    assert prom.value(samples, "missing_total") == 0.0


def test_histogram_between_two_scrapes_matches_the_values_observed_between_them() -> None:
    live = LatencyHistogram()
    for us in (5, 900, 900, 70_000):
        live.observe_us(us)  # before the window
    before = prom.parse(_render(live.family("h_seconds", "h")))
    window = LatencyHistogram()
    for us in [*[3, 8, 16, 17, 250, 1200, 1300, 4000, 45_000] * 11, 70_000]:
        live.observe_us(us)
        window.observe_us(us)
    after = prom.parse(_render(live.family("h_seconds", "h")))

    delta = prom.histogram_delta(before, after, "h_seconds")
    assert delta.count == window.count
    assert delta.counts == window.counts  # every bound is exposed: same resolution
    assert delta.sum_us == window.sum_us
    assert delta.overflow == 1  # beyond the last bound; its exact value is not exposed
    for p in (50, 95):
        assert delta.percentile(p) == pytest.approx(window.percentile(p))


def test_histogram_delta_needs_the_histogram() -> None:
    with pytest.raises(ValueError):
        prom.histogram_delta({}, {}, "absent_seconds")


def test_udp_socket_drops_are_read_per_local_port(tmp_path: Path) -> None:
    table = tmp_path / "udp"
    table.write_text(
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode ref pointer drops\n"
        "  1: 0100007F:9C40 00000000:0000 07 00000000:00000300 00:00000000 00000000     0"
        "        0 1 2 0000000000000000 17\n"
        "  2: 0100007F:A000 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0"
        "        0 3 2 0000000000000000 0\n"
    )
    stats = read_udp_sockets([str(table), str(tmp_path / "missing")])
    assert stats[0x9C40].drops == 17 and stats[0x9C40].rx_queue == 0x300
    assert total_drops(stats, [0x9C40, 0xA000, 1]) == 17


def test_machine_busy_seconds_grow() -> None:
    first = read_machine_busy_seconds()
    sum(i * i for i in range(200_000))
    assert read_machine_busy_seconds() >= first > 0
