"""The audit log's hash chain [pure].

Each row's ``hash`` is SHA-256 over the previous row's hash followed by the canonical JSON of the
row (every column but ``hash``; keys sorted, no spaces, UTF-8). Editing, inserting or removing a
row in the middle breaks the chain at that row; removing rows at the end is caught by comparing
the last sequence number with the one SQLite handed out (``sqlite_sequence``).

Details are small JSON objects: no secrets (keys such as ``password`` or ``token`` are refused)
and no transcript text (callers record counts and ids, never what was said).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

GENESIS = "0" * 64
MAX_DETAILS_BYTES = 4096
FIELD_MAX = 200
FORBIDDEN_KEYS = frozenset(
    {"password", "passwd", "secret", "token", "code", "csrf", "cookie", "hash", "text"}
)


class Result(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"
    LOCKED = "locked"


class AuditError(ValueError):
    """An audit entry was refused (secret-looking key, too large, bad type)."""


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: str
    actor: str
    actor_role: str
    action: str
    target: str
    result: str
    address: str
    details: str  # canonical JSON
    prev_hash: str
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "actor_role": self.actor_role,
            "action": self.action,
            "target": self.target,
            "result": self.result,
            "address": self.address,
            "details": json.loads(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _check_value(value: Any, depth: int = 0) -> None:
    if depth > 4:
        raise AuditError("audit details nest too deep")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise AuditError("audit details must be finite numbers")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_value(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError("audit detail keys must be strings")
            if key.lower() in FORBIDDEN_KEYS:
                raise AuditError(f"audit details must not carry {key!r}")
            _check_value(item, depth + 1)
        return
    raise AuditError(f"audit details cannot hold {type(value).__name__}")


def details_json(details: Mapping[str, Any] | None) -> str:
    """Validate and serialise an entry's details (canonical JSON, ≤ 4 KiB)."""
    data = dict(details or {})
    _check_value(data)
    text = canonical(data)
    if len(text.encode()) > MAX_DETAILS_BYTES:
        raise AuditError("audit details are larger than 4 KiB")
    return text


def clip(value: str) -> str:
    """Bound a free-text column (actor, target, address) and strip control characters."""
    cleaned = "".join(c if ord(c) >= 32 else " " for c in value)
    return cleaned[:FIELD_MAX]


def entry_hash(entry: Entry) -> str:
    body = entry.as_dict()
    body.pop("hash")
    payload = (entry.prev_hash + canonical(body)).encode()
    return hashlib.sha256(payload).hexdigest()


def seal(entry: Entry) -> Entry:
    """The entry with its hash filled in."""
    return Entry(**{**_fields(entry), "hash": entry_hash(entry)})


def _fields(entry: Entry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in Entry.__slots__}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    rows: int
    last_hash: str
    broken_at: int | None = None
    problem: str = ""


def verify(entries: Iterable[Entry], last_sequence: int | None = None) -> Verdict:
    """Walk the chain in ``seq`` order; report the first row that does not fit."""
    prev_hash, prev_seq, rows = GENESIS, 0, 0
    for entry in entries:
        if entry.prev_hash != prev_hash:
            return Verdict(
                False,
                rows,
                prev_hash,
                entry.seq,
                f"row {entry.seq}: previous hash does not match row {prev_seq} "
                "(a row was removed, inserted or edited before it)",
            )
        if entry_hash(entry) != entry.hash:
            return Verdict(
                False,
                rows,
                prev_hash,
                entry.seq,
                f"row {entry.seq}: stored hash does not match its content (the row was edited)",
            )
        prev_hash, prev_seq, rows = entry.hash, entry.seq, rows + 1
    if last_sequence is not None and last_sequence > prev_seq:
        return Verdict(
            False,
            rows,
            prev_hash,
            prev_seq + 1,
            f"rows {prev_seq + 1}-{last_sequence} are missing (removed from the end)",
        )
    return Verdict(True, rows, prev_hash)
