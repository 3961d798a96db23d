"""``bench relay-packet``: plain against sealed relay datagrams, a small run."""

from __future__ import annotations

from voice_server.bench.relay_packet import format_summary, run_relay_packet_bench


def test_a_small_run_times_both_formats_and_their_ratio() -> None:
    result = run_relay_packet_bench(packets=200, payload=92, rounds=2)
    for mode in ("plain", "sealed"):
        assert result[mode]["pack_ns"] > 0 and result[mode]["accept_ns"] > 0
    # the sealed datagram: a 12-byte nonce more, the AEAD's 16-byte tag instead of BLAKE2s'
    assert result["sealed"]["datagram_bytes"] == result["plain"]["datagram_bytes"] + 12
    assert result["ratio"] == round(result["sealed"]["total_ns"] / result["plain"]["total_ns"], 2)
    assert "sealed / plain" in format_summary(result)
