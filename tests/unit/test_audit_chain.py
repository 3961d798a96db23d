"""The audit chain and export documents (pure)."""

import csv
import io
import json

import pytest

from voice_server.audit.chain import GENESIS, AuditError, Entry, details_json, seal, verify
from voice_server.audit.export import csv_document, json_document


def chain(n: int) -> list[Entry]:
    entries, prev = [], GENESIS
    for i in range(1, n + 1):
        e = seal(
            Entry(
                i,
                f"2025-01-01T00:00:0{i % 10}Z",
                "root",
                "admin",
                "user.add",
                f"user:u{i}",
                "ok",
                "127.0.0.1",
                details_json({"n": i}),
                prev,
            )
        )
        entries.append(e)
        prev = e.hash
    return entries


def test_an_untouched_chain_verifies() -> None:
    verdict = verify(chain(5), last_sequence=5)
    assert verdict.ok and verdict.rows == 5 and verdict.last_hash == chain(5)[-1].hash


def test_an_edited_row_breaks_the_chain_at_that_row() -> None:
    entries = chain(5)
    e = entries[2]
    entries[2] = Entry(e.seq, e.at, "mallory", *[getattr(e, f) for f in Entry.__slots__[3:]])
    verdict = verify(entries)
    assert not verdict.ok and verdict.broken_at == 3 and "edited" in verdict.problem


def test_a_rehashed_edit_breaks_the_next_row() -> None:
    entries = chain(5)
    e = entries[1]
    forged = seal(
        Entry(
            e.seq,
            e.at,
            "mallory",
            e.actor_role,
            e.action,
            e.target,
            e.result,
            e.address,
            e.details,
            e.prev_hash,
        )
    )
    entries[1] = forged
    verdict = verify(entries)
    assert not verdict.ok and verdict.broken_at == 3


def test_removed_rows_are_found_in_the_middle_and_at_the_end() -> None:
    entries = chain(5)
    assert verify(entries[:2] + entries[3:]).broken_at == 4
    tail = verify(entries[:3], last_sequence=5)
    assert not tail.ok and "missing" in tail.problem


@pytest.mark.parametrize("key", ["password", "token", "Secret", "code", "csrf", "text"])
def test_details_refuse_secret_looking_keys(key: str) -> None:
    with pytest.raises(AuditError):
        details_json({"outer": {key: "x"}})


def test_details_are_canonical_and_bounded() -> None:
    assert details_json({"b": 1, "a": "漏れ"}) == '{"a":"漏れ","b":1}'
    with pytest.raises(AuditError):
        details_json({"big": "x" * 5000})
    with pytest.raises(AuditError):
        details_json({"f": float("nan")})


def test_csv_export_has_a_bom_a_who_and_when_line_and_defuses_formulas() -> None:
    body = csv_document(
        {"exported_by": "root", "exported_at": "2025-01-01T00:00:00Z"},
        ["a", "b"],
        [{"a": '=HYPERLINK("x")', "b": "避難所"}, {"a": {"k": 1}, "b": None}],
    )
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["exported_by", "root", "exported_at", "2025-01-01T00:00:00Z"]
    assert rows[1] == ["a", "b"]
    assert rows[2] == ['\'=HYPERLINK("x")', "避難所"]
    assert rows[3] == ['{"k": 1}', ""]


def test_json_export_is_headed_with_who_and_when() -> None:
    doc = json.loads(json_document({"exported_by": "root"}, "entries", [{"seq": 1}]))
    assert doc == {"exported_by": "root", "entries": [{"seq": 1}]}
