"""Webhook endpoints and deliveries in the database (SQLite migration 9, PostgreSQL 6).

The queue is the ``webhook_delivery`` table, so it survives a restart. At most
:data:`~voice_server.webhooks.rules.MAX_QUEUE` deliveries wait at once: an event that finds the
queue full goes straight to the dead-letter list (``state='dead'``, ``last_error='overflow'``,
counted). Claiming due deliveries pushes their ``next_at_ms`` on by a lease in the claiming
transaction, so two processes never send the same attempt; a process that dies mid-send leaves
the delivery to be retried when the lease ends."""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voice_server.store.database import Database
from voice_server.webhooks.rules import MAX_QUEUE

__all__ = ["Delivery", "Endpoint", "WebhookStore"]

LEASE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    ca_file: str | None
    enabled: bool
    created_by: str
    created_ms: int

    def public(self) -> dict[str, Any]:
        """As the API shows it (never the secret)."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "ca_file": self.ca_file,
            "enabled": self.enabled,
            "created_by": self.created_by,
            "created_ms": self.created_ms,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    endpoint_id: str
    msg_id: str
    event_type: str
    body: str
    state: str
    attempts: int
    next_at_ms: int
    last_status: int | None
    last_error: str

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "msg_id": self.msg_id,
            "event_type": self.event_type,
            "state": self.state,
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
        }


def _endpoint(r: Any) -> Endpoint:
    return Endpoint(
        r["id"],
        r["url"],
        tuple(json.loads(r["events"])),
        r["secret"],
        r["ca_file"],
        bool(r["enabled"]),
        r["created_by"],
        int(r["created_ms"]),
    )


_DELIVERY = (
    "id, endpoint_id, msg_id, event_type, body, state, attempts, next_at_ms, last_status, "
    "last_error"
)


def _delivery(r: Any) -> Delivery:
    return Delivery(*(r[i] for i in range(10)))


def _waiting(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM webhook_delivery WHERE state = 'queued'").fetchone()
    return int(row[0])


class WebhookStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.overflow = 0  # events dead-lettered here because the queue was full

    # ------------------------------------------------------------------ endpoints
    def add_endpoint(
        self,
        conn: sqlite3.Connection,
        url: str,
        events: Sequence[str],
        secret: str,
        ca_file: str | None,
        by: str,
        now_ms: int,
    ) -> Endpoint:
        ep = Endpoint(
            "wh_" + secrets.token_hex(8), url, tuple(events), secret, ca_file, True, by, now_ms
        )
        conn.execute(
            "INSERT INTO webhook_endpoint (id, url, events, secret, ca_file, enabled, "
            "created_by, created_ms) VALUES (?, ?, ?, ?, ?, 1, ?, ?)",
            (ep.id, url, json.dumps(list(events)), secret, ca_file, by, now_ms),
        )
        return ep

    def remove_endpoint(self, conn: sqlite3.Connection, endpoint_id: str) -> bool:
        cur = conn.execute("DELETE FROM webhook_endpoint WHERE id = ?", (endpoint_id,))
        return bool(cur.rowcount)

    def endpoints(self) -> list[Endpoint]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT * FROM webhook_endpoint ORDER BY created_ms").fetchall()
        return [_endpoint(r) for r in rows]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        with self.db.connection() as conn:
            r = conn.execute(
                "SELECT * FROM webhook_endpoint WHERE id = ?", (endpoint_id,)
            ).fetchone()
        return _endpoint(r) if r is not None else None

    # ------------------------------------------------------------------ the queue
    def enqueue(
        self, conn: sqlite3.Connection, msg_id: str, event_type: str, body: str, now_ms: int
    ) -> int:
        """One delivery per enabled endpoint taking ``event_type`` (inside the caller's
        transaction); returns how many were queued (the rest: dead-lettered, the queue full)."""
        rows = conn.execute("SELECT id, events FROM webhook_endpoint WHERE enabled = 1").fetchall()
        targets = [r["id"] for r in rows if event_type in json.loads(r["events"])]
        if not targets:
            return 0
        waiting = _waiting(conn)
        queued = 0
        for endpoint_id in targets:
            full = waiting + queued >= MAX_QUEUE
            cur = conn.execute(
                "INSERT OR IGNORE INTO webhook_delivery (endpoint_id, msg_id, event_type, body, "
                "state, attempts, next_at_ms, last_error, created_ms, updated_ms) "
                "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (
                    endpoint_id,
                    msg_id,
                    event_type,
                    body,
                    "dead" if full else "queued",
                    now_ms,
                    "overflow" if full else "",
                    now_ms,
                    now_ms,
                ),
            )
            if cur.rowcount != 1:
                continue  # this event was queued for this endpoint already
            if full:
                self.overflow += 1
            else:
                queued += 1
        return queued

    def claim_due(self, now_ms: int, limit: int = 20) -> list[Delivery]:
        """Due deliveries, leased to the caller (see the module's note)."""
        with self.db.connection() as conn:
            due = conn.execute(
                "SELECT 1 FROM webhook_delivery WHERE state = 'queued' AND next_at_ms <= ? LIMIT 1",
                (now_ms,),
            ).fetchone()
        if due is None:
            return []  # nothing due: no write transaction (it would take the write lock)
        with self.db.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY} FROM webhook_delivery WHERE state = 'queued' "
                "AND next_at_ms <= ? ORDER BY next_at_ms, id LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            out = [_delivery(r) for r in rows]
            for d in out:
                conn.execute(
                    "UPDATE webhook_delivery SET next_at_ms = ? WHERE id = ?",
                    (now_ms + LEASE_MS, d.id),
                )
        return out

    def finish(
        self,
        conn: sqlite3.Connection,
        d: Delivery,
        *,
        state: str,
        next_at_ms: int,
        status: int | None,
        error: str,
        now_ms: int,
    ) -> None:
        conn.execute(
            "UPDATE webhook_delivery SET state = ?, attempts = attempts + 1, next_at_ms = ?, "
            "last_status = ?, last_error = ?, updated_ms = ? WHERE id = ?",
            (state, next_at_ms, status, error[:300], now_ms, d.id),
        )

    def get(self, delivery_id: int) -> Delivery | None:
        with self.db.connection() as conn:
            r = conn.execute(
                f"SELECT {_DELIVERY} FROM webhook_delivery WHERE id = ?", (delivery_id,)
            ).fetchone()
        return _delivery(r) if r is not None else None

    def list(self, state: str, limit: int = 200) -> list[Delivery]:
        with self.db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_DELIVERY} FROM webhook_delivery WHERE state = ? "
                "ORDER BY id DESC LIMIT ?",
                (state, limit),
            ).fetchall()
        return [_delivery(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT state, count(*) FROM webhook_delivery GROUP BY state"
            ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def redeliver(self, conn: sqlite3.Connection, delivery_id: int, now_ms: int) -> bool:
        """A dead delivery back in the queue, its attempts from zero (if the queue has room)."""
        if _waiting(conn) >= MAX_QUEUE:
            return False
        cur = conn.execute(
            "UPDATE webhook_delivery SET state = 'queued', attempts = 0, next_at_ms = ?, "
            "last_error = '', updated_ms = ? WHERE id = ? AND state = 'dead'",
            (now_ms, now_ms, delivery_id),
        )
        return bool(cur.rowcount)
