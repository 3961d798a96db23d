"""The parent's view of its media workers' metrics."""

from __future__ import annotations

from voice_server.metrics import Family
from voice_server.workers.pool import summed


def _serialized(*families: Family) -> list[list[object]]:
    return [
        [f.name, f.kind, f.help, [[x, dict(lb), v] for x, lb, v in f.samples]] for f in families
    ]


def test_the_workers_media_families_add_up_to_one_process_view() -> None:
    w0 = _serialized(
        Family("voice_media_packets_out_total", "counter", "out").add(10),
        Family("voice_media_drops_total", "counter", "drops").add(1, reason="stale"),
        Family("h", "histogram", "h").add(2, "_bucket", le="0.001").add(3, "_bucket", le="+Inf"),
    )
    w1 = _serialized(
        Family("voice_media_packets_out_total", "counter", "out").add(5),
        Family("voice_media_drops_total", "counter", "drops").add(2, reason="bad_rtp"),
        Family("h", "histogram", "h").add(1, "_bucket", le="0.001").add(1, "_bucket", le="+Inf"),
    )
    out = {f.name: f for f in summed([w0, w1])}
    assert out["voice_media_packets_out_total"].samples == [("", {}, 15.0)]
    assert sorted(out["voice_media_drops_total"].samples, key=str) == sorted(
        [("", {"reason": "stale"}, 1.0), ("", {"reason": "bad_rtp"}, 2.0)], key=str
    )
    assert out["h"].samples == [("_bucket", {"le": "0.001"}, 3.0), ("_bucket", {"le": "+Inf"}, 4.0)]
    assert out["h"].kind == "histogram"
