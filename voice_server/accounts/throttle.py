"""Login throttling state in the database (shared by every process of the deployment)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from voice_server.accounts.lockout import (
    FORGET_SECONDS,
    Throttle,
    after_failure,
    remaining,
    threshold_for,
)
from voice_server.store.database import Database


def _get(conn: sqlite3.Connection, key: str) -> Throttle | None:
    row = conn.execute(
        "SELECT failures, last_failure, locked_until FROM login_throttle WHERE key = ?", (key,)
    ).fetchone()
    return Throttle(row[0], row[1], row[2]) if row else None


class LoginThrottle:
    def __init__(self, db: Database) -> None:
        self._db = db

    def wait_seconds(self, keys: Sequence[str], now: float) -> float:
        """How long until every key may try again (0: go ahead)."""
        with self._db.connection() as conn:
            return max((remaining(_get(conn, k), now) for k in keys), default=0.0)

    def failed(self, keys: Sequence[str], now: float) -> bool:
        """Count a failure for each key; True when this failure locked one of them."""
        locked = False
        with self._db.transaction() as conn:
            # forgotten failures go, so guessed names cannot grow the table for ever
            conn.execute(
                "DELETE FROM login_throttle WHERE last_failure < ? AND locked_until < ?",
                (now - FORGET_SECONDS, now),
            )
            for key in keys:
                state = after_failure(_get(conn, key), now, threshold_for(key))
                locked = locked or state.locked_until > now
                conn.execute(
                    "INSERT OR REPLACE INTO login_throttle (key, failures, last_failure,"
                    " locked_until) VALUES (?, ?, ?, ?)",
                    (key, state.failures, state.last_failure, state.locked_until),
                )
        return locked

    def succeeded(self, key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM login_throttle WHERE key = ?", (key,))
