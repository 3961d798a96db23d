"""One-time sign-in codes for shared devices.

An admin or supervisor creates a code for a staff account; it is shown as text and as a QR code
of ``<base>/signin#code=…`` (in the fragment, so it never reaches a server log). Eight
characters of Crockford's base32 (40 bits), valid for minutes, usable once; the table keeps
only its SHA-256. Redeeming is one conditional UPDATE, so two devices cannot both use it.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3

from voice_server.store.database import Database

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
LENGTH = 8


def normalise(code: str) -> str:
    """Upper-case, drop separators, read the easily confused letters as digits."""
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    return cleaned.translate(str.maketrans("ILO", "110"))


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _digest(code: str) -> str:
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def code_id(code: str) -> str:
    """A short non-secret id for the audit log."""
    return _digest(code)[:12]


class SigninCodes:
    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, conn: sqlite3.Connection, user_name: str, created_by: str, ttl: float, now: float
    ) -> str:
        code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        conn.execute("DELETE FROM signin_code WHERE expires_at < ?", (now - 86400,))
        conn.execute(
            "INSERT INTO signin_code (code_hash, user_name, created_by, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (_digest(code), user_name, created_by, now, now + ttl),
        )
        return code

    def redeem(self, code: str, now: float) -> str | None:
        """The user the code was for, or None (unknown, expired or already used)."""
        cleaned = normalise(code)
        if len(cleaned) != LENGTH or any(c not in ALPHABET for c in cleaned):
            return None
        digest = _digest(cleaned)
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE signin_code SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                " AND expires_at > ?",
                (now, digest, now),
            )
            if cur.rowcount != 1:
                return None
            row = conn.execute(
                "SELECT user_name FROM signin_code WHERE code_hash = ?", (digest,)
            ).fetchone()
        return str(row[0])
