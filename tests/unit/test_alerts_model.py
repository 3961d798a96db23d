"""The alert state machine and the keyword lists and matcher (pure)."""

from __future__ import annotations

import pytest

from voice_server.alerts.keywords import MAX_KEYWORDS, matches, parse_list
from voice_server.alerts.model import (
    ALERT_ID_RE,
    Alert,
    AlertError,
    AlertKind,
    AlertState,
    Resolution,
    acknowledge,
    clean_note,
    escalate,
    new_alert_id,
    parse_resolution,
    resolve,
)
from voice_server.alerts.service import transcription_step
from voice_server.calllog.normalize import normalize


def raised(kind: AlertKind = AlertKind.EMERGENCY, dedupe: str | None = "emergency:sato") -> Alert:
    return Alert(
        id=new_alert_id(1000),
        kind=kind,
        channel="ops",
        state=AlertState.RAISED,
        raised_ms=1000,
        raised_by="sato",
        dedupe=dedupe,
        updated_ms=1000,
    )


def test_an_alert_is_acknowledged_by_someone_then_resolved_with_a_note() -> None:
    a = acknowledge(raised(), "boss", "Boss", 2000)
    assert (a.state, a.acked_by, a.acked_by_name, a.acked_ms) == (
        AlertState.ACKNOWLEDGED,
        "boss",
        "Boss",
        2000,
    )
    r = resolve(a, "boss2", "Boss2", Resolution.FALSE_ALARM, "pocket press", 3000)
    assert (r.state, r.resolution, r.note, r.resolved_by, r.acked_by) == (
        AlertState.RESOLVED,
        "false_alarm",
        "pocket press",
        "boss2",
        "boss",
    )
    assert r.dedupe is None  # a new emergency by the same user may be raised


def test_resolving_a_raised_alert_acknowledges_it_in_the_same_step() -> None:
    r = resolve(raised(), "boss", "Boss", Resolution.VALID, "", 5000)
    assert (r.acked_by, r.acked_ms, r.resolved_ms) == ("boss", 5000, 5000)


def test_moves_out_of_order_are_refused_with_a_stable_code() -> None:
    a = acknowledge(raised(), "boss", "Boss", 2000)
    with pytest.raises(AlertError) as exc:
        acknowledge(a, "boss", "Boss", 2100)
    assert exc.value.code == "alert_state" and exc.value.status == 409
    r = resolve(a, "boss", "Boss", Resolution.VALID, "", 3000)
    for move in (
        lambda: resolve(r, "x", "X", Resolution.VALID, "", 4000),
        lambda: acknowledge(r, "x", "X", 4000),
        lambda: escalate(r, 4000),
    ):
        with pytest.raises(AlertError) as exc:
            move()
        assert exc.value.code == "alert_state"


def test_a_keyword_alert_keeps_its_dedupe_key_once_resolved() -> None:
    a = raised(AlertKind.KEYWORD, "keyword:b1:火事")
    assert resolve(a, "boss", "Boss", Resolution.VALID, "", 2).dedupe == "keyword:b1:火事"


def test_escalation_happens_once_and_only_while_raised() -> None:
    e = escalate(raised(), 2000)
    assert e.escalated and e.state is AlertState.RAISED
    with pytest.raises(AlertError):
        escalate(e, 3000)


def test_notes_and_resolutions_are_checked() -> None:
    assert clean_note("  <script>x</script> ") == "<script>x</script>"
    for bad in (5, "x" * 1001, "a\x00b"):
        with pytest.raises(AlertError) as exc:
            clean_note(bad)
        assert exc.value.code == "bad_note"
    assert parse_resolution("valid") is Resolution.VALID
    with pytest.raises(AlertError) as exc:
        parse_resolution("cancelled")
    assert exc.value.code == "bad_resolution"


def test_alert_ids_sort_by_time_and_are_unique() -> None:
    a, b = new_alert_id(1_700_000_000_000), new_alert_id(1_700_000_000_001)
    assert ALERT_ID_RE.match(a) and ALERT_ID_RE.match(b) and a < b
    assert len({new_alert_id(5) for _ in range(200)}) == 200


def test_the_japanese_keywords_match_normalised_text() -> None:
    ks = parse_list(["火事", "救急", "不審者", "ガス漏れ"])
    text = normalize("東 門 で ガス 漏れ と 火事", "ja")
    assert [k.text for k in matches(text, ks)] == ["火事", "ガス漏れ"]
    # full-width / half-width and case fold as in search; hiragana and katakana stay apart
    assert [k.text for k in matches(normalize("ｶﾞｽ漏れです"), ks)] == ["ガス漏れ"]
    assert matches(normalize("がす漏れ"), ks) == []
    assert [k.text for k in matches(normalize("FIRE here"), parse_list(["Fire"]))] == ["Fire"]
    # a Japanese utterance is matched without spaces, a keyword's included
    spaced = parse_list(["gas leak"])
    assert matches(normalize("the gas leak", "ja"), spaced, "ja") == spaced
    assert matches(normalize("the gasleak"), spaced) == []


@pytest.mark.parametrize(
    ("items", "code"),
    [
        (["火事", "  "], "keyword_empty"),
        (["火"], "keyword_short"),
        (["a" * 51], "keyword_long"),
        (["ガス漏れ", "ｶﾞｽ漏れ"], "keyword_duplicate"),
        (["Fire", "FIRE"], "keyword_duplicate"),
        ([f"kw{i}" for i in range(MAX_KEYWORDS + 1)], "too_many_keywords"),
        ("not a list but fine", None),
        ({"a": 1}, "bad_keywords"),
        ([1, 2], "bad_keywords"),
        (["a\x07b"], "bad_keywords"),
    ],
)
def test_keyword_lists_are_refused_whole(items: object, code: str | None) -> None:
    if code is None:
        assert [k.text for k in parse_list(items)] == ["not a list but fine"]
        return
    with pytest.raises(AlertError) as exc:
        parse_list(items)
    assert exc.value.code == code


def test_a_list_of_200_is_accepted_and_an_xss_keyword_is_kept_as_typed() -> None:
    assert len(parse_list([f"kw{i}" for i in range(MAX_KEYWORDS)])) == MAX_KEYWORDS
    assert parse_list(["<img src=x onerror=alert(1)>"])[0].text == "<img src=x onerror=alert(1)>"


def test_transcription_alerts_follow_the_transcription_state() -> None:
    a = raised(AlertKind.TRANSCRIPTION, "transcription")
    assert transcription_step("stopped", None) == "raise"
    assert transcription_step("stopped", a) is None
    assert transcription_step("degraded", None) is None
    assert transcription_step("degraded", a) is None
    assert transcription_step("up", a) == "resolve"
    assert transcription_step("off", None) is None
