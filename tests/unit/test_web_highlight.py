"""Server-side highlighting (escape, then <mark>) and the dashboard's local dates and times."""

from __future__ import annotations

import html
import re
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.calllog.localtime import day_end_ms, day_start_ms, local_date, local_text
from voice_server.calllog.model import parse_time
from voice_server.web.highlight import highlight

TOKYO = ZoneInfo("Asia/Tokyo")


def test_matches_are_marked_across_the_spaces_vosk_puts_between_words() -> None:
    assert (
        highlight("東 門 で 水 漏れ です", "水漏れ", "ja") == "東 門 で <mark>水 漏れ</mark> です"
    )
    assert highlight("火事 です 火事", "火") == "<mark>火</mark>事 です <mark>火</mark>事"
    assert highlight("PUMP leak", "pump") == "<mark>PUMP</mark> leak"
    assert highlight("ﾎﾟﾝﾌﾟ 故障", "ポンプ") == "<mark>ﾎﾟﾝﾌﾟ</mark> 故障"  # NFKC composes


def test_text_is_escaped_before_anything_is_marked() -> None:
    out = highlight("<img src=x onerror=alert(1)> 漏れ", "漏れ <img")
    assert "<img" not in out
    assert out == "<mark>&lt;img</mark> src=x onerror=alert(1)&gt; <mark>漏れ</mark>"
    assert highlight("<b>x</b>", "b") == "&lt;<mark>b</mark>&gt;x&lt;/<mark>b</mark>&gt;"


@given(st.text(max_size=60), st.text(max_size=6))
@settings(max_examples=300)
def test_highlighting_only_adds_marks_to_the_escaped_text(text: str, query: str) -> None:
    out = str(highlight(text, query))
    assert html.unescape(re.sub(r"</?mark>", "", out)) == text
    assert "<" not in re.sub(r"</?mark>", "", out)


def test_dates_are_whole_days_in_the_display_time_zone() -> None:
    assert day_start_ms("2026-06-01", TOKYO) == parse_time("2026-06-01T00:00:00+09:00")
    assert day_end_ms("2026-06-01", TOKYO) == parse_time("2026-06-02T00:00:00+09:00") - 1
    ny = ZoneInfo("America/New_York")  # a 23-hour day
    assert day_end_ms("2026-03-08", ny) - day_start_ms("2026-03-08", ny) == 23 * 3600_000 - 1
    ms = parse_time("2026-05-31T15:30:00Z")
    assert local_text(ms, TOKYO) == "2026-06-01 00:30:00"
    assert local_date(ms, TOKYO) == "2026-06-01"
    for bad in ("2026-6-1", "yesterday", "2026-02-30"):
        with pytest.raises(ValueError):
            day_start_ms(bad, TOKYO)
