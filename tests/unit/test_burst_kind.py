"""An emergency burst keeps its call-log kind on both ways to the transcriber: the spool file's
tags (catch-up) and the live link's ``burst_start``."""

from __future__ import annotations

import json

import pytest

from voice_server.calllog.burst import BurstMeta
from voice_server.calllog.model import new_burst_id
from voice_server.transcribe.protocol import LinkError, burst_start, parse_burst_start


def meta(kind: str = "speech") -> BurstMeta:
    return BurstMeta(new_burst_id(1_700_000_000_000), "ops", "sato", "Sato", "s1", 1, kind)


def test_the_kind_travels_in_the_spool_tags_and_speech_adds_no_tag() -> None:
    assert "VOICE_KIND" not in meta().tags()
    tags = meta("emergency").tags()
    assert tags["VOICE_KIND"] == "emergency"
    assert BurstMeta.from_tags(tags).kind == "emergency"
    assert BurstMeta.from_tags(meta().tags()).kind == "speech"
    with pytest.raises(ValueError):
        BurstMeta.from_tags({**tags, "VOICE_KIND": "party"})


def test_the_kind_travels_on_the_live_link() -> None:
    msg = json.loads(burst_start(7, meta("emergency")))
    assert parse_burst_start(msg)[1].kind == "emergency"
    assert "kind" not in json.loads(burst_start(7, meta()))
    with pytest.raises(LinkError):
        parse_burst_start({**msg, "kind": "party"})


def test_an_all_calls_channels_and_a_direct_talks_target_travel_on_the_live_link() -> None:
    """Without them a live commit would write an all-call as one row in one channel and a direct
    talk as a channel-wide row (readable by everyone's replay)."""
    start = 1_700_000_000_000
    all_call = BurstMeta(new_burst_id(start), "ops", "boss", "Boss", "s1", 1, "all_call", ("hq",))
    got = parse_burst_start(json.loads(burst_start(3, all_call)))[1]
    assert (got.also, got.shared, got.target_sub) == (("hq",), True, None)
    direct = BurstMeta(new_burst_id(start), "ops", "boss", "Boss", "s1", 1, "direct", (), "sato")
    got = parse_burst_start(json.loads(burst_start(4, direct)))[1]
    assert (got.kind, got.target_sub, got.also) == ("direct", "sato", ())
    plain = json.loads(burst_start(5, meta()))
    assert "also" not in plain and "target_sub" not in plain
    for bad in (
        {"also": "hq"},
        {"also": ["hq", "hq"]},
        {"also": ["../x"]},
        {"also": [f"c{i}" for i in range(300)]},
        {"target_sub": ""},
        {"target_sub": 7},
        {"channel": "../../etc"},
    ):
        with pytest.raises(LinkError):
            parse_burst_start({**plain, **bad})
