"""The audit log table: append-only (SQLite triggers refuse UPDATE and DELETE), hash-chained.

The one write path is :meth:`AuditLog.record`. It runs inside a ``BEGIN IMMEDIATE`` transaction
(its own, or the caller's, so a change and its audit row commit together), which serialises
writers across processes: the previous hash read is always the last row's.

Later call-log features record their reads the same way, e.g.::

    audit.record(actor, "calllog.search", "channel:facilities",
                 {"query": "水漏れ", "channels": ["facilities"], "results": 3})
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from voice_server.audit.chain import (
    GENESIS,
    Entry,
    Result,
    Verdict,
    clip,
    details_json,
    seal,
    verify,
)
from voice_server.store.database import Database

_COLUMNS = "seq, at, actor, actor_role, action, target, result, address, details, prev_hash, hash"


class AuditSubject(Protocol):
    """Anyone acting: a signed-in user, an API token's user (``web.policy.Actor``)."""

    @property
    def sub(self) -> str: ...

    @property
    def role_name(self) -> str: ...


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(*(row[i] for i in range(11)))


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        actor: AuditSubject | str,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
        result: Result | str = Result.OK,
        *,
        address: str = "",
        conn: sqlite3.Connection | None = None,
    ) -> Entry:
        """Append one entry. ``conn``: a connection already inside a write transaction."""
        if isinstance(actor, str):
            sub, role = actor, ""
        else:
            sub, role = actor.sub, actor.role_name
        text = details_json(details)  # refuses secrets before anything is written
        if conn is not None:
            return self._append(conn, sub, role, action, target, text, str(result), address)
        with self._db.transaction() as own:
            return self._append(own, sub, role, action, target, text, str(result), address)

    def _append(
        self,
        conn: sqlite3.Connection,
        sub: str,
        role: str,
        action: str,
        target: str,
        details: str,
        result: str,
        address: str,
    ) -> Entry:
        last = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        prev_hash = last["hash"] if last else GENESIS
        seq_row = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'"
        ).fetchone()
        seq = max(int(seq_row[0]) if seq_row else 0, int(last["seq"]) if last else 0) + 1
        entry = seal(
            Entry(
                seq=seq,
                at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                actor=clip(sub),
                actor_role=clip(role),
                action=clip(action),
                target=clip(target),
                result=clip(result),
                address=clip(address),
                details=details,
                prev_hash=prev_hash,
            )
        )
        conn.execute(
            f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.seq,
                entry.at,
                entry.actor,
                entry.actor_role,
                entry.action,
                entry.target,
                entry.result,
                entry.address,
                entry.details,
                entry.prev_hash,
                entry.hash,
            ),
        )
        return entry

    def page(self, *, before: int | None = None, limit: int = 100) -> list[Entry]:
        """Newest first; ``before`` a sequence number for the next page."""
        limit = max(1, min(limit, 1000))
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [_entry(r) for r in rows]

    def iter_all(self, batch: int = 1000) -> Iterator[Entry]:
        """Oldest first, in batches (export and verification)."""
        after = 0
        while True:
            with self._db.connection() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, batch),
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield _entry(row)
            after = int(rows[-1]["seq"])

    def count(self) -> int:
        with self._db.connection() as conn:
            return int(conn.execute("SELECT count(*) FROM audit_log").fetchone()[0])

    def verify(self) -> Verdict:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'"
            ).fetchone()
        return verify(self.iter_all(), int(row[0]) if row else None)
