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
